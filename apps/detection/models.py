from __future__ import annotations

import uuid

from django.db import models

DEFAULT_COLOR = "#FFFFFF"


class DetectionLabel(models.Model):
    """A kind of object to find (``car``, ``logo``); workspace-level, attachable to detection tasks."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="detection_labels"
    )
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True, default="")
    color = models.CharField(max_length=32, default=DEFAULT_COLOR)
    # The name detect answers with; blank = ``name``.
    output_name = models.CharField(max_length=255, blank=True, default="")
    # Detection tasks this label is attached to (Task rows of type ``detection``).
    tasks = models.ManyToManyField("tasks.Task", related_name="detection_labels", blank=True)
    # Recognition tasks linked to the label (Ximilar runs them on the objects it finds).
    recognition_tasks = models.ManyToManyField(
        "tasks.Task", related_name="linked_detection_labels", blank=True
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]
        indexes = [models.Index(fields=["workspace", "name"], name="detlabel_workspace_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def answer_name(self) -> str:
        return self.output_name or self.name


class DetectionObject(models.Model):
    """One box on a training image: ``data`` = [xmin, ymin, xmax, ymax] in the stored image's pixels."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="detection_objects"
    )
    detection_label = models.ForeignKey(
        DetectionLabel, on_delete=models.CASCADE, related_name="detection_objects"
    )
    image = models.ForeignKey(
        "images.TrainingImage", on_delete=models.CASCADE, related_name="detection_objects"
    )
    data = models.JSONField()
    meta_data = models.JSONField(default=dict, blank=True)
    recognition_labels = models.ManyToManyField(
        "labels.Label", through="ObjectLabel", related_name="detection_objects", blank=True
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"{self.detection_label_id} {self.data} on {self.image_id}"


class ObjectLabel(models.Model):
    """A recognition label on an object (``value`` for a value label)."""

    object = models.ForeignKey(DetectionObject, on_delete=models.CASCADE, related_name="object_labels")
    label = models.ForeignKey("labels.Label", on_delete=models.CASCADE, related_name="object_labels")
    value = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["object", "label"], name="unique_object_label")]

    def __str__(self) -> str:
        return f"{self.label_id} on {self.object_id}"


class NegativeImage(models.Model):
    """An image with none of the task's objects on it: trains as background (``add-image``)."""

    task = models.ForeignKey("tasks.Task", on_delete=models.CASCADE, related_name="negative_images")
    image = models.ForeignKey(
        "images.TrainingImage", on_delete=models.CASCADE, related_name="negative_for_tasks"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "image"], name="unique_negative_image")]

    def __str__(self) -> str:
        return f"{self.image_id} negative for {self.task_id}"
