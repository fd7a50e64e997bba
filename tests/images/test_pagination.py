"""Paging the training images: cursors in the links, page=N from either end, and kept counts that
stay right through uploads, label changes, deletes, wipes, imports and cascades."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest

from apps.core.pagination import MSG_BAD_CURSOR
from apps.images import services as image_services
from apps.images.models import ImageCount, TrainingImage
from apps.labels import services as label_services
from apps.labels.models import Label
from apps.workspaces import services as workspace_services

pytestmark = pytest.mark.django_db

BASE = "/recognition/v2/training-image/"


@pytest.fixture
def eleven(make_image, make_label):
    """11 images, two of each ``created`` second (ties broken by id), every third with label ``odd``."""
    odd = make_label("odd")
    images = [make_image(labels=[odd.id] if i % 3 == 0 else []) for i in range(11)]
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for i, image in enumerate(images):
        TrainingImage.objects.filter(pk=image.pk).update(created=start + dt.timedelta(seconds=i // 2))
    expected = list(TrainingImage.objects.order_by("-created", "id").values_list("id", flat=True))
    return [str(pk) for pk in expected], odd


def _ids(body) -> list[str]:
    return [item["id"] for item in body["results"]]


def _query(link: str) -> dict:
    return {key: values[0] for key, values in parse_qs(urlsplit(link).query).items()}


def test_following_next_and_previous_walks_the_list_in_order(api, eleven):
    expected, _ = eleven
    body = api.get(BASE, {"page_size": 3}).json()
    seen, pages = _ids(body), [body]
    while body["next"]:
        assert _query(body["next"])["page"] == str(len(pages) + 1)  # page numbers stay in the links
        body = api.get(body["next"]).json()
        assert body["count"] == 11
        seen += _ids(body)
        pages.append(body)
    assert seen == expected and len(pages) == 4
    back = api.get(pages[-1]["previous"]).json()
    assert _ids(back) == _ids(pages[-2]) and back["next"]
    assert _ids(api.get(back["previous"]).json()) == _ids(pages[1])
    assert "cursor" not in pages[1]["previous"] and "page=" not in pages[1]["previous"]


@pytest.mark.parametrize("page", [1, 2, 3, 4])
def test_page_n_gives_the_same_rows_from_either_end(api, eleven, page):
    expected, _ = eleven
    body = api.get(BASE, {"page": page, "page_size": 3}).json()
    assert _ids(body) == expected[(page - 1) * 3 : page * 3]
    assert (body["next"] is None) == (page == 4)


def test_a_page_past_the_end_and_a_bad_cursor_are_404(api, eleven):
    assert api.get(BASE, {"page": 5, "page_size": 3}).status_code == 404
    for cursor in ("nonsense", "a" * 40 + ":b"):
        response = api.get(BASE, {"cursor": cursor})
        assert response.status_code == 404
        assert response.json() == {"detail": MSG_BAD_CURSOR}
    link = api.get(BASE, {"page_size": 3}).json()["next"]
    tampered = _query(link)["cursor"].replace(":", "x:", 1)
    assert api.get(BASE, {"cursor": tampered}).status_code == 404


def test_a_filtered_list_carries_its_count_only_for_the_same_filters(api, eleven, make_label):
    expected, odd = eleven
    first = api.get(BASE, {"page_size": 2, "test": "false"}).json()
    assert first["count"] == 11
    cursor = _query(first["next"])["cursor"]
    # The same cursor with another filter: rows and count are those of the new filter.
    other = api.get(BASE, {"page_size": 2, "test": "true", "cursor": cursor}).json()
    assert other["count"] == 0 and other["results"] == []
    assert api.get(BASE, {"labels": str(odd.id)}).json()["count"] == 4


def test_counts_follow_uploads_labels_deletes_wipes_and_cascades(
    api, user, workspace, make_image, make_label
):
    def counts():
        body = api.get("/recognition/v2/label/").json()
        return api.get(BASE).json()["count"], {
            label["name"]: label["images_count"] for label in body["results"]
        }

    cat, dog = make_label("cat"), make_label("dog")
    images = [make_image(labels=[cat.id]) for _ in range(4)]
    assert counts() == (4, {"cat": 4, "dog": 0})

    image_services.training_image_add_label(image=images[0], label_id=dog.id)
    image_services.training_image_add_label(image=images[0], label_id=dog.id)  # again: no change
    image_services.training_image_remove_label(image=images[1], label_id=cat.id)
    assert counts() == (4, {"cat": 3, "dog": 1})

    image_services.training_image_bulk_update(
        workspace=workspace,
        image_ids=[i.id for i in images],
        add_label_ids=[dog.id],
        remove_label_ids=[cat.id],
    )
    assert counts() == (4, {"cat": 0, "dog": 4})

    image_services.training_image_delete(image=images[3])
    assert counts() == (3, {"cat": 0, "dog": 3})

    keep = make_image(labels=[cat.id])
    label_services.label_wipe(label=Label.objects.get(pk=dog.pk), batch=2)
    assert counts() == (1, {"cat": 1})
    label_services.label_delete(label=Label.objects.get(pk=cat.pk))
    assert api.get(BASE).json()["count"] == 1 and keep.pk

    team = workspace_services.workspace_create(owner=user, name="Team")
    make_image(workspace=team)
    assert ImageCount.objects.get(workspace=team).images == 1
    team.delete()  # the cascade takes the counter with the images
    assert not ImageCount.objects.filter(workspace_id=team.pk).exists()
    assert api.get(BASE).json()["count"] == 1


def test_a_zip_import_counts_every_stored_image(api, make_label):
    from tests.images.test_zip_import import archive  # the zip the import tests build
    from tests.pictures import picture

    label = make_label("cat")
    files = {f"cats/{i}.jpg": picture(color=(40 * i, 0, 0)) for i in range(3)} | {"cats/bad.jpg": b"no"}
    response = api.post(
        f"{BASE}import-zip/", {"zip": archive(files), "labels": str(label.id)}, format="multipart"
    )
    assert response.status_code == 201, response.json()
    assert api.get(BASE).json()["count"] == 3
    assert api.get(f"/recognition/v2/label/{label.id}/").json()["images_count"] == 3
