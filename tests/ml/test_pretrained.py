"""Where starting weights come from: the offline package, a local file, the hub, or none."""

from __future__ import annotations

import pathlib
import time

import pytest
import sklearn.datasets
import timm
import torch
from safetensors.torch import save_file

from ml import models
from ml.config import TrainConfig
from ml.data import normalize, preprocess
from ml.models import (
    PACKAGE_NAME,
    PretrainedLoadError,
    build_model,
    load_package_weights,
    package_weights_path,
)

SAMPLES = pathlib.Path(sklearn.datasets.__file__).parent / "images"
IMAGENET_DAISY = 985
IMAGENET_PALACE = 698


@pytest.fixture(scope="module")
def imagenet_lite0():
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    load_package_weights(model)
    return model.eval()


def _top5(model, path) -> list[int]:
    cfg = models.data_config(model)
    x = normalize(preprocess(path, 224, cfg["interpolation"])[None], cfg["mean"], cfg["std"])
    with torch.inference_mode():
        return model(x)[0].topk(5).indices.tolist()


def test_the_package_ships_one_state_dict_that_maps_one_to_one_onto_timm():
    source = torch.load(package_weights_path(), map_location="cpu", weights_only=True)
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    assert len(source) == len(target) == 296
    for (src, a), (dst, b) in zip(source.items(), target.items(), strict=True):
        assert a.shape == b.shape, (src, dst)


def test_the_package_weights_load_strictly_and_replace_every_random_tensor(imagenet_lite0):
    source = torch.load(package_weights_path(), map_location="cpu", weights_only=True)
    loaded = imagenet_lite0.state_dict()
    for (_, a), (_, b) in zip(source.items(), loaded.items(), strict=True):
        assert torch.equal(a.to(b.dtype), b)


def test_the_package_weights_recognise_the_photos_scikit_learn_ships(imagenet_lite0):
    # flower.jpg is a dahlia-like flower, china.jpg a Chinese temple: ImageNet's nearest
    # classes are "daisy" and "palace". Random or mis-mapped weights would not find them.
    assert IMAGENET_DAISY in _top5(imagenet_lite0, SAMPLES / "flower.jpg")
    assert IMAGENET_PALACE in _top5(imagenet_lite0, SAMPLES / "china.jpg")[:3]


def test_the_package_source_gives_a_fresh_head_with_the_requested_outputs():
    built = build_model(TrainConfig(pretrained="package"), num_outputs=4)
    assert built.pretrained == PACKAGE_NAME
    assert built.model.get_classifier().out_features == 4
    assert built.warnings == []


def test_the_package_source_refuses_another_architecture():
    with pytest.raises(PretrainedLoadError):
        build_model(TrainConfig(architecture="resnet10t", pretrained="package"), num_outputs=2)


def test_a_missing_local_file_raises(tmp_path):
    with pytest.raises(PretrainedLoadError, match="not found"):
        build_model(TrainConfig(architecture="resnet10t", pretrained=str(tmp_path / "nope.safetensors")), 2)


def test_a_local_safetensors_file_loads_through_timm(tmp_path):
    reference = timm.create_model("resnet10t", pretrained=False)
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    built = build_model(TrainConfig(architecture="resnet10t", pretrained=str(path)), num_outputs=3)
    assert built.pretrained == f"file:{path}"
    assert torch.equal(built.model.conv1[0].weight, reference.conv1[0].weight)
    assert built.model.get_classifier().out_features == 3


def test_none_trains_from_scratch_and_records_none():
    built = build_model(TrainConfig(architecture="resnet10t", pretrained="none"), num_outputs=2)
    assert built.pretrained is None and built.warnings == []


def _no_hub(monkeypatch):
    def unreachable(arch):
        raise PretrainedLoadError("hub unreachable")

    monkeypatch.setattr(models, "_create_from_hub", unreachable)


def test_auto_falls_back_to_the_package_without_the_hub(monkeypatch):
    _no_hub(monkeypatch)
    built = build_model(TrainConfig(pretrained="auto"), num_outputs=2)
    assert built.pretrained == PACKAGE_NAME
    assert built.warnings == []


def test_auto_falls_back_to_scratch_with_a_warning_for_other_architectures(monkeypatch):
    _no_hub(monkeypatch)
    built = build_model(TrainConfig(architecture="resnet10t", pretrained="auto"), num_outputs=2)
    assert built.pretrained is None
    assert "training from scratch" in built.warnings[0]


def test_hub_fails_fast_and_clearly_when_offline():
    if models._hub_reachable():
        pytest.skip("the hub is reachable from here")
    started = time.monotonic()
    with pytest.raises(PretrainedLoadError):
        build_model(TrainConfig(architecture="resnet10t", pretrained="hub"), num_outputs=2)
    assert time.monotonic() - started < models.HUB_CONNECT_TIMEOUT_S + 5
