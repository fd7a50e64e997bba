"""``/media/<storage name>?sig=...``: files behind signed, expiring links (see storage.py)."""

from django.urls import re_path

from .views import MediaFileView

urlpatterns = [re_path(r"^(?P<name>.+)$", MediaFileView.as_view(), name="media-file")]
