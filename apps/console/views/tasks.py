"""Tasks: list and create, the task page (labels, versions, deployed one), delete, deploy, train."""

from __future__ import annotations

from django.contrib import messages
from django.http import JsonResponse
from django.shortcuts import redirect
from django.template.defaultfilters import pluralize
from django.views.decorators.http import require_POST

from apps.core.errors import DomainError
from apps.detection import services as detection_services
from apps.tasks import services as task_services
from apps.tasks.models import Task
from apps.training import services as training_services

from .. import selectors
from ..forms import DeployForm, FinalRefitForm, LabelForm, TaskForm
from ..templatetags.numbers import count
from ..tenancy import page, workspace_view


@workspace_view
def home(request):
    return redirect("console:task-list")


@workspace_view
def task_list(request):
    form = TaskForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        if data["type"] == Task.Type.DETECTION:
            task = detection_services.detection_task_create(
                workspace=request.workspace, owner=request.user, name=data["name"]
            )
        else:
            task = task_services.task_create(
                workspace=request.workspace, owner=request.user, name=data["name"], type=data["type"]
            )
        messages.success(request, f"Task {task.name} created.")
        return redirect("console:task-detail", task_id=task.pk)
    status = 400 if form.errors else 200
    context = {
        "tasks": selectors.task_lists(workspace=request.workspace),
        "quotas": selectors.workspace_quotas(workspace=request.workspace),
        "form": form,
    }
    return page(request, "console/task_list.html", context, status=status)


def task_context(task: Task, **extra) -> dict:
    """What the task page shows; also the base of the pages under it."""
    versions = selectors.task_versions(task=task)
    return {
        "task": task,
        "is_detection": task.type == Task.Type.DETECTION,
        "labels": selectors.task_labels(task=task),
        "versions": versions,
        "trained_versions": [v for v in versions if v.train_status == "TRAINED"],
        "label_form": LabelForm(),
        **extra,
    }


@workspace_view
def task_detail(request, task_id):
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    return page(request, "console/task_detail.html", task_context(task))


def label_count_text(task: Task, label) -> str:
    """What a label's card says about its size ("1,204 images", "3 boxes"); the task page's
    template writes the same."""
    if task.type == Task.Type.DETECTION:
        return f"{count(label.objects_count)} box{pluralize(label.objects_count, 'es')}"
    return f"{count(label.images_count)} image{pluralize(label.images_count)}"


@workspace_view
def label_counts(request, task_id):
    """The label cards' counts as the task page shows them: the upload script asks once its files
    are stored, so the cards are right without a reload."""
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    labels = selectors.task_labels(task=task)
    return JsonResponse({"labels": {str(label.pk): label_count_text(task, label) for label in labels}})


@workspace_view
def task_delete(request, task_id):
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    if request.method == "POST":
        try:
            task_services.task_delete(task=task)
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("console:task-detail", task_id=task.pk)
        messages.success(request, f"Task {task.name} deleted.")
        return redirect("console:task-list")
    return page(request, "console/task_confirm_delete.html", {"task": task})


@require_POST
@workspace_view
def label_create(request, task_id):
    """A new label of the task's kind, attached to the task (both or neither)."""
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    form = LabelForm(request.POST)
    if not form.is_valid():
        context = task_context(task, label_form=form)
        return page(request, "console/task_detail.html", context, status=400)
    name = form.cleaned_data["name"]
    if task.type == Task.Type.DETECTION:
        detection_services.detection_task_label_create(task=task, name=name)
    else:
        task_services.task_label_create(task=task, name=name)
    messages.success(request, f"Label {name} added.")
    return redirect("console:task-detail", task_id=task.pk)


@require_POST
@workspace_view
def task_deploy(request, task_id):
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    form = DeployForm(request.POST)
    if form.is_valid():
        try:
            task_services.task_deploy(task=task, version=form.cleaned_data["version"])
            messages.success(request, f"Version {form.cleaned_data['version']} is deployed.")
        except DomainError as exc:
            messages.error(request, exc.message)
    else:
        messages.error(request, "Choose a version.")
    return redirect("console:task-detail", task_id=task.pk)


@require_POST
@workspace_view
def task_final_refit(request, task_id):
    """The task's "final refit" switch (the API's ``final_refit`` field), through the same service."""
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    form = FinalRefitForm(request.POST)
    form.is_valid()  # a checkbox: always valid, absent means off
    on = bool(form.cleaned_data.get("final_refit"))
    task_services.task_update(task=task, data={"final_refit": on})
    if on:
        messages.success(request, "Each training now ends with a refit on every labelled image.")
    else:
        messages.success(request, "Trainings keep the model fitted on the training side (80 %).")
    return redirect("console:task-detail", task_id=task.pk)


@require_POST
@workspace_view
def task_train(request, task_id):
    """Queue the next version; the version page shows its progress (with eager jobs it is done)."""
    task = selectors.task_get(workspace=request.workspace, task_id=task_id)
    try:
        version = training_services.task_train(task=task, user=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("console:task-detail", task_id=task.pk)
    return redirect("console:version-detail", task_id=task.pk, version=version.version)
