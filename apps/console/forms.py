"""The console's input forms: shapes and types only. The rules (limits, tenancy, label types) are
the services' and answer their own messages."""

from __future__ import annotations

from django import forms

from apps.core.ids import parse_uuid
from apps.tasks.models import Task
from apps.webhooks.events import EVENTS as WEBHOOK_EVENTS

TASK_TYPES = [
    (Task.Type.MULTI_CLASS, "Categorization (one label per image)"),
    (Task.Type.MULTI_LABEL, "Tagging (any number of tags per image)"),
    (Task.Type.REGRESSION, "Regression (a value per image)"),
    (Task.Type.DETECTION, "Object detection (boxes)"),
]


class TaskForm(forms.Form):
    name = forms.CharField(max_length=255, strip=True)
    type = forms.ChoiceField(choices=TASK_TYPES, initial=Task.Type.MULTI_CLASS)


class LabelForm(forms.Form):
    name = forms.CharField(max_length=255, strip=True)


class MemberForm(forms.Form):
    username_or_email = forms.CharField(max_length=254, strip=True, label="Username or e-mail")


class WorkspaceSwitchForm(forms.Form):
    workspace = forms.UUIDField()


class FinalRefitForm(forms.Form):
    # An unticked checkbox sends nothing: absent is False.
    final_refit = forms.BooleanField(required=False)


class DeployForm(forms.Form):
    version = forms.IntegerField(min_value=1)


class ImageFilterForm(forms.Form):
    label = forms.UUIDField(required=False)
    test = forms.ChoiceField(
        choices=[("", "all"), ("1", "test only"), ("0", "training only")], required=False
    )
    unlabelled = forms.BooleanField(required=False)
    pool = forms.BooleanField(required=False)  # the task's pool (apps/suggestions)
    page = forms.IntegerField(min_value=1, required=False)


class BulkForm(forms.Form):
    ACTIONS = [
        ("label", "Add label"),
        ("unlabel", "Remove label"),
        ("test", "Mark as test"),
        ("untest", "Unmark test"),
        ("delete", "Delete"),
    ]
    images = forms.TypedMultipleChoiceField(coerce=str, choices=(), required=True)
    action = forms.ChoiceField(choices=ACTIONS)
    label = forms.UUIDField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Any ids: the service scopes them to the workspace (another tenant's id is a 404).
        self.fields["images"].valid_value = lambda value: True

    def clean_images(self) -> list[str]:
        ids = [parse_uuid(value) for value in self.cleaned_data["images"]]
        if None in ids:
            raise forms.ValidationError("Select images from the grid.")
        return [str(value) for value in ids]

    def clean(self):
        data = super().clean()
        if data.get("action") in ("label", "unlabel") and not data.get("label"):
            self.add_error("label", "Choose the label.")
        return data


class UploadForm(forms.Form):
    file = forms.FileField(required=False)
    label = forms.UUIDField(required=False)
    value = forms.FloatField(required=False)
    test_image = forms.BooleanField(required=False)


class TryForm(forms.Form):
    image = forms.FileField()
    version = forms.IntegerField(min_value=1, required=False)


class BoxForm(forms.Form):
    label = forms.UUIDField()
    x1 = forms.FloatField()
    y1 = forms.FloatField()
    x2 = forms.FloatField()
    y2 = forms.FloatField()

    def box(self) -> list[float]:
        data = self.cleaned_data
        return [data["x1"], data["y1"], data["x2"], data["y2"]]


class WebhookForm(forms.Form):
    url = forms.CharField(max_length=2000, strip=True, label="URL")
    events = forms.MultipleChoiceField(
        choices=[(name, f"{name}: {text}") for name, text in WEBHOOK_EVENTS.items()],
        widget=forms.CheckboxSelectMultiple,
        label="Events",
    )
    description = forms.CharField(max_length=255, required=False, strip=True)


class ScopedTokenForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True, label="Token name")
    scope = forms.ChoiceField(
        choices=[
            ("read-only", "Read-only: reads the workspace, changes nothing"),
            ("classify-only", "Classify-only: calls classify and detect, nothing else"),
            ("full", "Full: everything in this workspace, but not members or tokens"),
        ],
        label="Scope",
    )
    expires_on = forms.DateField(
        required=False,
        label="Expires on",
        help_text="Optional; the token stops working as that day begins (UTC).",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
