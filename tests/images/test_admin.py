from __future__ import annotations

import pytest

from apps.images.models import TrainingImage

from .conftest import media_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged_in(client, admin_user):
    client.force_login(admin_user)
    return client


def test_the_admin_lists_images_with_signed_thumbnails_filters_and_search(
    admin_client_logged_in, make_image, make_label
):
    cat = make_label("cat")
    image = make_image(labels=[cat.id])
    make_image()
    response = admin_client_logged_in.get("/admin/images/trainingimage/")
    assert response.status_code == 200
    page = response.content.decode()
    assert f"/media/{image.thumbnail}?sig=" in page
    assert "By test image" in page and "By labels" in page
    response = admin_client_logged_in.get("/admin/images/trainingimage/", {"q": "cat"})
    assert str(image.id) in response.content.decode()
    assert response.context["cl"].result_count == 1
    response = admin_client_logged_in.get(f"/admin/images/trainingimage/{image.id}/change/")
    assert response.status_code == 200
    assert f"/media/{image.file}?sig=" in response.content.decode()


def test_deleting_in_the_admin_removes_the_files(
    admin_client_logged_in, make_image, settings, django_capture_on_commit_callbacks
):
    images = [make_image(), make_image()]
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_logged_in.post(
            "/admin/images/trainingimage/",
            {"action": "delete_with_files", "_selected_action": [str(image.id) for image in images]},
        )
    assert response.status_code == 302
    assert not TrainingImage.objects.exists()
    assert media_files(settings) == []
