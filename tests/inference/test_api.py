"""Classify: ``POST classify/`` and ``POST /v1/classify/`` with real (tiny) trained models.

The models are trained once per session with ``ml.recognition.recipe.fit`` on pictures the tests
draw (solid colours, two independent coloured halves, brightness), then stored per test as TRAINED
model versions through the training engineer's ``apps.training.artifacts.save_artifacts``.
"""

from __future__ import annotations

import base64
import io
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from ximilar.client import RecognitionClient

from apps.images.models import TrainingImage
from apps.inference import cache as model_cache
from apps.inference import services as classify
from apps.labels.models import Label
from apps.tasks.models import Task
from apps.training import artifacts
from apps.training.models import ModelVersion
from apps.workspaces import services as workspace_services
from ml.config import TrainConfig
from ml.inference import amx_available
from ml.recognition.predictor import Predictor
from ml.recognition.recipe import fit
from tests import pictures

SIZE = 32
RED, GREEN, BLUE = (215, 35, 35), (35, 190, 50), (40, 50, 215)
COLOURS = [RED, GREEN, BLUE]


# --------------------------------------------------------------------------- drawing
# The shared drawings with a little less noise than the training tests use.
solid = partial(pictures.solid, noise=18)
halves = partial(pictures.halves, noise=12)
grey = partial(pictures.brightness, noise=5)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --------------------------------------------------------------------------- tiny trained models

CONFIG = TrainConfig(architecture="resnet10t", pretrained="none", input_size=SIZE, epochs=8, seed=0)
MC_LABELS = [{"id": str(uuid.uuid4()), "name": n} for n in ("red", "green", "blue")]
ML_LABELS = [{"id": str(uuid.uuid4()), "name": n} for n in ("red-left", "blue-right")]
RG_LABELS = [{"id": str(uuid.uuid4()), "name": "brightness"}]


def _fit(items, labels, task_type, out_dir):
    result = fit(
        items, [i % 5 == 0 for i in range(len(items))], labels, task_type, config=CONFIG, out_dir=out_dir
    )
    return str(out_dir), result.metrics


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """Artifact folders: multi_class (v1, and v2 trained with the colours swapped), multi_label,
    regression. A few seconds each on 2 cores; trained once per session."""
    root = tmp_path_factory.mktemp("classify-models")
    rng = np.random.default_rng(1)
    colour_items = [(solid(COLOURS[i % 3], rng), i % 3) for i in range(36)]
    # v2 learns red <-> blue swapped, so which version answered is visible in the prediction.
    swap = {0: 2, 1: 1, 2: 0}
    swapped_items = [(image, swap[target]) for image, target in colour_items]
    tag_items = []
    for i in range(40):
        left, right = bool(i % 2), bool(i // 2 % 2)
        tag_items.append((halves(left, right, rng), [j for j, on in enumerate((left, right)) if on]))
    values = np.linspace(0, 1, 30)
    value_items = [(grey(v, rng), float(v)) for v in values]
    return {
        "multi_class": _fit(colour_items, MC_LABELS, "multi_class", root / "mc")[0],
        "multi_class_swapped": _fit(swapped_items, MC_LABELS, "multi_class", root / "mc2")[0],
        "multi_label": _fit(tag_items, ML_LABELS, "multi_label", root / "ml")[0],
        "regression": _fit(value_items, RG_LABELS, "regression", root / "rg")[0],
    }


@pytest.fixture(autouse=True)
def _model_dirs(settings, tmp_path):
    settings.VF_MODEL_CACHE_DIR = tmp_path / "model-cache"
    settings.VF_URL_FETCH_ALLOWED_HOSTS = ["localhost"]
    # Tracing costs a second per load and every test loads fresh versions; the traced path runs in
    # the multi_class client test and is compared with eager in the last test.
    settings.VF_INFERENCE_MODE = "eager"
    yield
    model_cache.model_cache().clear()


LABEL_TYPE = {
    "multi_class": Label.Type.CATEGORY,
    "multi_label": Label.Type.TAG,
    "regression": Label.Type.VALUE,
}
LABELS = {"multi_class": MC_LABELS, "multi_label": ML_LABELS, "regression": RG_LABELS}


def add_version(task: Task, directory: str, number: int, *, deploy: bool = True) -> ModelVersion:
    version = ModelVersion.objects.create(
        workspace=task.workspace, task=task, version=number, train_status=ModelVersion.Status.TRAINED
    )
    version.artifact_path = artifacts.save_artifacts(version, directory)
    version.save(update_fields=["artifact_path"])
    if deploy:
        Task.objects.filter(pk=task.pk).update(
            production_version=number, last_train_status=Task.TrainStatus.TRAINED
        )
    return version


@pytest.fixture
def make_task(trained, workspace, user):
    """A task of a type with its labels (the trained models' label ids) and version 1 deployed."""

    def make(task_type: str = "multi_class", workspace=workspace, model: str | None = None) -> Task:
        task = Task.objects.create(workspace=workspace, owner=user, name=f"{task_type} task", type=task_type)
        for label in LABELS[task_type]:
            obj, _ = Label.objects.get_or_create(
                id=label["id"],
                defaults={"workspace": workspace, "name": label["name"], "type": LABEL_TYPE[task_type]},
            )
            task.labels.add(obj)
        add_version(task, trained[model or task_type], 1)
        task.refresh_from_db()
        return task

    return make


def names(record) -> list[str]:
    return [label["name"] for label in record["labels"]]


def assert_classified(record, task_type):
    assert record["_status"] == {"code": 200, "text": "OK"}
    assert record["_width"] == SIZE and record["_height"] == SIZE
    assert "_base64" not in record
    if task_type == "regression":
        assert set(record["best_label"]) == {"id", "name", "value"}
        assert [set(label) for label in record["labels"]] == [{"id", "name", "value"}]
        return
    assert set(record["best_label"]) == {"id", "name", "prob"}
    probs = [label["prob"] for label in record["labels"]]
    assert probs == sorted(probs, reverse=True)
    assert record["best_label"] == record["labels"][0]
    assert all(set(label) == {"id", "name", "prob"} for label in record["labels"])
    if task_type == "multi_label":
        assert all(set(label) == {"id", "name", "prob"} for label in record["best_labels"])
    else:
        assert "best_labels" not in record


def assert_envelope(result, task, version):
    assert set(result) == {"task_id", "version", "status", "statistics", "records"}
    assert result["task_id"] == str(task.pk)
    assert result["version"] == version
    assert result["status"] == {"code": 200, "text": "OK"}
    assert set(result["statistics"]) == {"processing time"}
    assert 0 < result["statistics"]["processing time"] < 60


# --------------------------------------------------------------------------- the official client


@pytest.mark.django_db(transaction=True)
class TestThroughTheOfficialClient:
    @pytest.fixture
    def client(self, live_server, token):
        # max_image_size=0: the client would otherwise re-encode base64 records with OpenCV.
        return RecognitionClient(token=token, endpoint=live_server.url + "/", max_image_size=0)

    def test_it_classifies_colours_with_a_multi_class_task(self, client, make_task, settings):
        settings.VF_INFERENCE_MODE = "auto"  # the production default
        task = make_task("multi_class")
        rng = np.random.default_rng(100)
        truth = ["red", "green", "blue", "blue", "red", "green"]
        colour = {"red": RED, "green": GREEN, "blue": BLUE}
        records = [{"_base64": b64(solid(colour[name], rng)), "_id": n} for n, name in enumerate(truth)]

        result = client.classify_on_task(records, task_id=str(task.pk), version=1)

        assert_envelope(result, task, 1)
        assert [r["best_label"]["name"] for r in result["records"]] == truth
        for n, record in enumerate(result["records"]):
            assert_classified(record, "multi_class")
            assert record["_id"] == n
            assert sorted(names(record)) == ["blue", "green", "red"]
            assert record["best_label"]["prob"] > 0.5
            assert abs(sum(label["prob"] for label in record["labels"]) - 1) < 1e-3
            assert {label["id"] for label in record["labels"]} == {label["id"] for label in MC_LABELS}

        remote, _ = client.get_task(str(task.pk))
        again = remote.classify([{"_base64": b64(solid(BLUE, rng)), "noresize": True}])
        assert again["version"] == 1
        assert again["records"][0]["best_label"]["name"] == "blue"
        assert again["records"][0]["noresize"] is True  # unknown keys are echoed

    def test_it_tags_both_halves_with_a_multi_label_task(self, client, make_task):
        task = make_task("multi_label")
        rng = np.random.default_rng(101)
        cases = [(True, False), (False, True), (True, True), (False, False)] * 2
        records = [{"_base64": b64(halves(left, right, rng))} for left, right in cases]

        result = client.classify_on_task(records, task_id=str(task.pk))

        assert_envelope(result, task, 1)
        for (left, right), record in zip(cases, result["records"], strict=True):
            assert_classified(record, "multi_label")
            expected = [n for n, on in (("red-left", left), ("blue-right", right)) if on]
            assert sorted(label["name"] for label in record["best_labels"]) == sorted(expected)
            assert sorted(names(record)) == ["blue-right", "red-left"]

    def test_it_predicts_brightness_with_a_regression_task(self, client, make_task):
        task = make_task("regression")
        rng = np.random.default_rng(102)
        values = [0.05, 0.3, 0.5, 0.7, 0.95]
        remote, _ = client.get_task(str(task.pk))

        result = remote.classify([{"_base64": b64(grey(v, rng)), "noresize": True} for v in values])

        assert_envelope(result, task, 1)
        predicted = []
        for record in result["records"]:
            assert_classified(record, "regression")
            assert record["best_label"]["name"] == "brightness"
            assert record["best_label"]["id"] == RG_LABELS[0]["id"]
            predicted.append(record["best_label"]["value"])
        assert np.abs(np.asarray(predicted) - values).mean() < 0.12
        assert predicted == sorted(predicted)

    def test_it_fetches_url_records_concurrently(self, client, make_task):
        task = make_task("multi_class")
        rng = np.random.default_rng(103)
        pictures = {f"/{n}.png": solid(COLOURS[n % 3], rng) for n in range(5)}
        model_cache.predictor_get(task.versions.get())  # time the fetching, not the model load
        with slow_server(pictures, delay=1.0) as base:
            records = [{"_url": f"{base}/{n}.png"} for n in range(5)]
            started = time.monotonic()
            result = client.classify_on_task(records, task_id=str(task.pk))
            elapsed = time.monotonic() - started

        assert [r["best_label"]["name"] for r in result["records"]] == [
            "red",
            "green",
            "blue",
            "red",
            "green",
        ]
        assert [r["_url"] for r in result["records"]] == [r["_url"] for r in records]
        assert elapsed < 4.0  # one after the other would take at least 5 s


@contextmanager
def slow_server(routes: dict, delay: float):
    """Serve ``routes`` ({path: png bytes}) on localhost, each answer after ``delay`` seconds."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server API
            time.sleep(delay)
            body = routes.get(self.path, b"")
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- behaviour (test client)

URL = "/recognition/v2/classify/"


def post(api, body, url=URL):
    return api.post(url, body, format="json")


@pytest.mark.django_db
class TestClassify:
    def test_a_batch_of_ten_classifies_the_good_records_and_explains_the_bad_ones(self, api, make_task):
        task = make_task("multi_class")
        rng = np.random.default_rng(200)
        jpeg = solid(GREEN, rng, size=48, fmt="JPEG")
        records = [
            {"_base64": b64(solid(RED, rng)), "_id": "red"},
            {"_base64": "this is not base64!!", "_id": "bad base64"},
            {"_base64": b64(b"just some text, not an image"), "_id": "not an image"},
            {"_url": "http://169.254.169.254/latest/meta-data", "_id": "refused url"},
            {"_url": "ftp://example.com/a.png", "_id": "ftp"},
            {"_base64": "data:image/jpeg;base64," + b64(jpeg), "_id": "green jpeg"},
            {"_id": "no image"},
            {"_base64": b64(solid(BLUE, rng)[:60]), "_id": "truncated"},
            "not an object",
            {"_base64": b64(solid(BLUE, rng)), "_id": "blue", "custom": {"a": [1, 2]}},
        ]

        response = post(api, {"task_id": str(task.pk), "records": records})

        assert response.status_code == 200, response.content
        result = response.json()
        assert_envelope(result, task, 1)
        by_id = {r.get("_id", "?"): r for r in result["records"]}
        assert len(result["records"]) == 10
        for good, colour in (("red", "red"), ("green jpeg", "green"), ("blue", "blue")):
            assert by_id[good]["best_label"]["name"] == colour
            assert by_id[good]["_status"] == {"code": 200, "text": "OK"}
        assert (by_id["green jpeg"]["_width"], by_id["green jpeg"]["_height"]) == (48, 48)
        assert by_id["blue"]["custom"] == {"a": [1, 2]}
        expected = {
            "bad base64": "The base64 data is not valid.",
            "not an image": "The file is not an image we can read (JPEG, PNG, WebP, GIF or BMP).",
            "refused url": "The URL points to an address that is not public.",
            "ftp": "Only http and https URLs can be fetched.",
            "no image": classify.MSG_RECORD_NO_IMAGE,
            "truncated": "The image is truncated or corrupt.",
        }
        for key, text in expected.items():
            assert by_id[key]["_status"] == {"code": 400, "text": text}, key
            assert set(by_id[key]) <= {"_id", "_status", "_url"}  # no _width, no labels, no _base64
        assert result["records"][8] == {"_status": {"code": 400, "text": classify.MSG_RECORD_NOT_OBJECT}}

    def test_it_runs_one_forward_pass_for_the_whole_batch(self, api, make_task, monkeypatch):
        task = make_task("multi_class")
        calls = []
        original = Predictor.predict_tensor

        def spy(self, batch, descriptor=False):
            calls.append(batch.shape[0])
            return original(self, batch, descriptor=descriptor)

        monkeypatch.setattr(Predictor, "predict_tensor", spy)
        rng = np.random.default_rng(201)
        model_cache.predictor_get(task.versions.get())  # loading warms up with its own passes
        calls.clear()
        records = [{"_base64": b64(solid(COLOURS[n % 3], rng))} for n in range(7)] + [{"_base64": "@@"}]
        assert post(api, {"task_id": str(task.pk), "records": records}).status_code == 200
        assert calls == [7]

    @pytest.mark.parametrize("count", [0, 11])
    def test_it_refuses_zero_or_more_than_ten_records(self, api, make_task, count):
        task = make_task("multi_class")
        records = [{"_base64": b64(solid(RED, np.random.default_rng(n)))} for n in range(count)]
        response = post(api, {"task_id": str(task.pk), "records": records})
        assert response.status_code == 400
        if count:
            assert response.json() == {"detail": classify.MSG_TOO_MANY_RECORDS.format(limit=10, count=11)}
        else:
            assert response.json() == {"detail": classify.MSG_NO_RECORDS}

    def test_a_new_deployment_is_used_by_the_next_call_and_old_versions_stay_reachable(
        self, api, make_task, trained
    ):
        task = make_task("multi_class")
        red = {"_base64": b64(solid(RED, np.random.default_rng(202)))}
        first = post(api, {"task_id": str(task.pk), "records": [red]}).json()
        assert (first["version"], first["records"][0]["best_label"]["name"]) == (1, "red")

        add_version(task, trained["multi_class_swapped"], 2)  # deployed: production_version = 2
        second = post(api, {"task_id": str(task.pk), "records": [red]}).json()
        assert (second["version"], second["records"][0]["best_label"]["name"]) == (2, "blue")

        pinned = post(api, {"task_id": str(task.pk), "version": 1, "records": [red]}).json()
        assert (pinned["version"], pinned["records"][0]["best_label"]["name"]) == (1, "red")

        Task.objects.filter(pk=task.pk).update(production_version=1)  # roll back the deployment
        rolled_back = post(api, {"task_id": str(task.pk), "records": [red]}).json()
        assert (rolled_back["version"], rolled_back["records"][0]["best_label"]["name"]) == (1, "red")

    def test_it_refuses_a_version_that_is_not_trained(self, api, make_task):
        task = make_task("multi_class")
        ModelVersion.objects.create(
            workspace=task.workspace, task=task, version=2, train_status=ModelVersion.Status.FAILED
        )
        record = {"_base64": b64(solid(RED, np.random.default_rng(203)))}
        for version in (2, 7):
            response = post(api, {"task_id": str(task.pk), "version": version, "records": [record]})
            assert response.status_code == 400
            assert response.json() == {"detail": classify.MSG_VERSION_NOT_TRAINED.format(version=version)}

    def test_it_refuses_a_task_that_was_never_trained(self, api, workspace):
        task = Task.objects.create(workspace=workspace, name="new")
        record = {"_base64": b64(solid(RED, np.random.default_rng(204)))}
        response = post(api, {"task_id": str(task.pk), "records": [record]})
        assert response.status_code == 400
        assert response.json() == {"detail": classify.MSG_NOT_TRAINED}

    def test_another_workspaces_task_is_not_found(self, api, other_api, make_task, other_user):
        other_workspace = workspace_services.workspace_ensure_default(user=other_user)
        task = make_task("multi_class", workspace=other_workspace)
        record = {"_base64": b64(solid(RED, np.random.default_rng(205)))}
        response = post(api, {"task_id": str(task.pk), "records": [record]})
        assert response.status_code == 404
        assert response.json() == {"detail": "Task not found."}
        # ... also when naming the other user's workspace
        response = post(
            api, {"task_id": str(task.pk), "workspace": str(other_workspace.pk), "records": [record]}
        )
        assert response.status_code == 404
        assert post(other_api, {"task_id": str(task.pk), "records": [record]}).status_code == 200

    def test_it_needs_a_token(self, anon, make_task):
        task = make_task("multi_class")
        response = post(anon, {"task_id": str(task.pk), "records": [{"_url": "http://example.com/a.png"}]})
        assert response.status_code == 401

    def test_it_needs_a_task(self, api):
        response = post(api, {"records": [{"_url": "http://example.com/a.png"}]})
        assert response.status_code == 400
        assert response.json() == {"task_id": ["Send the task's id as task_id (or task)."]}

    @pytest.mark.parametrize("url", ["/recognition/v2/classify", "/v2/classify/", "/v2/classify"])
    def test_the_seed_curl_bodies_work_on_every_path(self, api, make_task, url):
        """Ximilar's body uses ``task``, Vize's ``task_id`` and ``"descriptor": 0``."""
        task = make_task("multi_class")
        record = {"_base64": b64(solid(GREEN, np.random.default_rng(206)))}
        ximilar = {"task": str(task.pk), "version": 1, "records": [record]}
        vize = {"task_id": str(task.pk), "version": 1, "descriptor": 0, "records": [record]}
        for body in (ximilar, vize):
            response = post(api, body, url=url)
            assert response.status_code == 200, response.content
            assert response.json()["records"][0]["best_label"]["name"] == "green"
            assert "_descriptor" not in response.json()["records"][0]

    def test_it_classifies_in_a_shared_workspace_named_in_the_body(self, api, make_task, user, other_user):
        team = workspace_services.workspace_create(owner=other_user, name="Team")
        workspace_services.membership_add(workspace=team, actor=other_user, username_or_email=user.username)
        task = make_task("multi_class", workspace=team)
        record = {"_base64": b64(solid(BLUE, np.random.default_rng(207)))}
        response = post(api, {"task_id": str(task.pk), "workspace": str(team.pk), "records": [record]})
        assert response.status_code == 200
        assert response.json()["records"][0]["best_label"]["name"] == "blue"

    def test_descriptor_adds_the_normalised_features(self, api, make_task):
        task = make_task("multi_class")
        rng = np.random.default_rng(208)
        records = [{"_base64": b64(solid(c, rng))} for c in (RED, RED, BLUE)]
        result = post(api, {"task_id": str(task.pk), "descriptor": True, "records": records}).json()
        vectors = np.asarray([r["_descriptor"] for r in result["records"]])
        assert vectors.shape == (3, 512)  # resnet10t's pooled features
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
        assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # same colour, closer features

    def test_threshold_drops_unlikely_labels(self, api, make_task):
        task = make_task("multi_class")
        record = {"_base64": b64(solid(RED, np.random.default_rng(209)))}
        result = post(api, {"task_id": str(task.pk), "threshold": 0.5, "records": [record]}).json()
        only = result["records"][0]
        assert names(only) == ["red"]
        assert only["best_label"]["name"] == "red"

    def test_store_images_stores_each_record_once(self, api, make_task, workspace):
        task = make_task("multi_class")
        rng = np.random.default_rng(210)
        red, blue = solid(RED, rng), solid(BLUE, rng)
        body = {
            "task_id": str(task.pk),
            "store_images": True,
            "records": [{"_base64": b64(red)}, {"_base64": "x"}],
        }
        first = post(api, body).json()["records"]
        stored = TrainingImage.objects.get(pk=first[0]["_stored_image_id"])
        assert stored.workspace == workspace
        assert "_stored_image_id" not in first[1]
        # The same picture again is not an error: the record answers the image already stored.
        body["records"] = [{"_base64": b64(red)}, {"_base64": b64(blue)}]
        second = post(api, body).json()["records"]
        assert second[0]["_stored_image_id"] == str(stored.pk)
        assert TrainingImage.objects.filter(workspace=workspace).count() == 2
        assert "_stored_image_id" not in post(api, {**body, "store_images": False}).json()["records"][0]

    def test_a_body_over_the_limit_is_a_json_413(self, api, make_task, settings):
        task = make_task("multi_class")
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2000
        record = {"_base64": b64(solid(RED, np.random.default_rng(211), size=64))}
        response = post(api, {"task_id": str(task.pk), "records": [record] * 3})
        assert response.status_code == 413
        assert response.json() == {"detail": "Request body is too large."}

    def test_a_request_decodes_at_most_its_pixel_budget_and_jpegs_count_at_their_draft_scale(
        self, api, make_task, settings
    ):
        task = make_task("multi_class")
        rng = np.random.default_rng(31)
        settings.VF_MAX_REQUEST_PIXELS = 100_000
        png = solid(RED, rng, size=200)  # 40,000 pixels decoded
        # 1,600 x 1,600 = 2.56 M pixels, but decoded at 1/8 scale for a 32 px model: 40,000.
        jpeg = solid(BLUE, rng, size=1600, fmt="JPEG")
        records = [
            {"_base64": b64(png)},
            {"_base64": b64(jpeg)},
            {"_base64": b64(png)},
            {"_base64": b64(jpeg)},
        ]

        result = post(api, {"task_id": str(task.pk), "records": records}).json()

        codes = [r["_status"]["code"] for r in result["records"]]
        assert codes == [200, 200, 413, 413]  # in record order: 80,000 fit, the third would not
        assert result["records"][2]["_status"]["text"] == (
            "This request's images hold more than 100000 pixels in all; send fewer or smaller images."
        )
        assert [r["best_label"]["name"] for r in result["records"][:2]] == ["red", "blue"]

    def test_a_record_waits_for_the_decode_gate_then_answers_503(self, api, make_task, settings):
        from apps.images.decoding import DECODE_GATE, MSG_DECODER_BUSY

        task = make_task("multi_class")
        settings.VF_DECODE_WAIT_S = 0
        record = {"_base64": b64(solid(RED, np.random.default_rng(5)))}
        with DECODE_GATE.hold(settings.VF_DECODE_PIXELS_AT_ONCE):  # other requests decode huge images
            busy = post(api, {"task_id": str(task.pk), "records": [record]}).json()["records"][0]
        assert busy["_status"] == {"code": 503, "text": MSG_DECODER_BUSY}
        assert DECODE_GATE.in_use == 0
        free = post(api, {"task_id": str(task.pk), "records": [record]}).json()["records"][0]
        assert free["best_label"]["name"] == "red"

    def test_a_renamed_label_answers_with_its_new_name(self, api, make_task):
        task = make_task("multi_class")
        Label.objects.filter(pk=MC_LABELS[0]["id"]).update(name="crimson")
        record = {"_base64": b64(solid(RED, np.random.default_rng(212)))}
        result = post(api, {"task_id": str(task.pk), "records": [record]}).json()
        assert result["records"][0]["best_label"] == {**result["records"][0]["labels"][0], "name": "crimson"}


@pytest.mark.django_db
class TestVizeV1:
    def test_it_classifies_an_uploaded_file(self, api, make_task):
        task = make_task("multi_class")
        image = io.BytesIO(solid(BLUE, np.random.default_rng(300), fmt="JPEG"))
        image.name = "blue.jpg"
        for url in ("/v1/classify/", "/v1/classify"):
            image.seek(0)
            response = api.post(url, {"task": str(task.pk), "image_file": image}, format="multipart")
            assert response.status_code == 200, response.content
            result = response.json()
            assert set(result) == {"best_label", "labels"}
            assert result["best_label"]["name"] == "blue"
            assert [label["prob"] for label in result["labels"]] == sorted(
                (label["prob"] for label in result["labels"]), reverse=True
            )

    def test_it_classifies_base64_and_refuses_a_bad_image(self, api, make_task):
        task = make_task("multi_class")
        data = b64(solid(GREEN, np.random.default_rng(301)))
        good = api.post("/v1/classify/", {"task": str(task.pk), "image_base64": data}, format="multipart")
        assert good.json()["best_label"]["name"] == "green"
        bad = api.post(
            "/v1/classify/", {"task": str(task.pk), "image_base64": "bm9wZQ=="}, format="multipart"
        )
        assert bad.status_code == 400
        assert bad.json() == {"detail": "The file is not an image we can read (JPEG, PNG, WebP, GIF or BMP)."}
        none = api.post("/v1/classify/", {"task": str(task.pk)}, format="multipart")
        assert none.json() == {"detail": classify.MSG_V1_NO_IMAGE}

    def test_it_is_scoped_to_the_workspace_and_needs_a_token(self, anon, other_api, make_task):
        task = make_task("multi_class")
        body = {"task": str(task.pk), "image_base64": b64(solid(RED, np.random.default_rng(302)))}
        assert other_api.post("/v1/classify/", body, format="multipart").status_code == 404
        assert anon.post("/v1/classify/", body, format="multipart").status_code == 401


# --------------------------------------------------------------------------- model cache, inference modes


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_load_a_version_once(make_task, monkeypatch):
    task = make_task("multi_class")
    version = task.versions.get()
    loads = []
    original = model_cache.load_predictor

    def counting(v):
        loads.append(v.pk)
        time.sleep(0.3)  # keep the load in flight while the other requests arrive
        return original(v)

    monkeypatch.setattr(model_cache, "load_predictor", counting)
    with ThreadPoolExecutor(6) as pool:
        predictors = list(pool.map(lambda _: model_cache.predictor_get(version), range(6)))
    assert loads == [version.pk]
    assert all(p is predictors[0] for p in predictors)


@pytest.mark.django_db
def test_the_traced_model_predicts_what_the_eager_model_predicts(make_task, trained):
    version = make_task("multi_class").versions.get()
    directory = artifacts.local_artifact_dir(version)
    eager = Predictor.load(directory, mode="eager")
    traced = Predictor.load(directory, mode="jit")
    rng = np.random.default_rng(400)
    for count in (1, 10):
        batch = torch.stack([eager.preprocess(solid(COLOURS[n % 3], rng)) for n in range(count)])
        a = eager.predict_tensor(batch, descriptor=True)
        b = traced.predict_tensor(batch, descriptor=True)
        assert np.allclose([r["probs"] for r in a], [r["probs"] for r in b], atol=1e-4)
        assert np.allclose([r["descriptor"] for r in a], [r["descriptor"] for r in b], atol=1e-4)


@pytest.mark.django_db
@pytest.mark.skipif(not amx_available(), reason="bf16 inference is only used on CPUs with AMX")
def test_the_bf16_model_gives_the_same_answers(make_task):
    version = make_task("multi_class").versions.get()
    directory = artifacts.local_artifact_dir(version)
    eager = Predictor.load(directory, mode="eager")
    bf16 = Predictor.load(directory, mode="bf16")
    rng = np.random.default_rng(401)
    batch = torch.stack([eager.preprocess(solid(COLOURS[n % 3], rng)) for n in range(10)])
    a = np.asarray([r["probs"] for r in eager.predict_tensor(batch)])
    b = np.asarray([r["probs"] for r in bf16.predict_tensor(batch)])
    assert (a.argmax(1) == b.argmax(1)).all()
    assert np.abs(a - b).max() < 0.05
