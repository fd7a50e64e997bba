"""Preprocessing shared by training and the predictor, and tensor augmentation."""

from __future__ import annotations

import io
import pathlib

import numpy as np
import sklearn.datasets
import torch
from PIL import Image

from ml.data import augment, auto_input_size, build_cache, normalize, preprocess

PHOTO = pathlib.Path(sklearn.datasets.__file__).parent / "images" / "china.jpg"


def test_a_path_bytes_and_a_pil_image_give_the_same_tensor():
    from_path = preprocess(PHOTO, 96)
    from_bytes = preprocess(PHOTO.read_bytes(), 96)
    from_pil = preprocess(Image.open(PHOTO), 96)
    assert from_path.shape == (3, 96, 96) and from_path.dtype == torch.uint8
    assert torch.equal(from_path, from_bytes) and torch.equal(from_path, from_pil)


def test_the_jpeg_draft_changes_little_against_a_full_decode():
    full = Image.open(PHOTO).convert("RGB")
    loaded = preprocess(full, 64).float()  # already decoded: no draft possible
    drafted = preprocess(PHOTO, 64).float()
    assert (loaded - drafted).abs().mean() < 6  # out of 255


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display = rotate 90 clockwise
    buffer = io.BytesIO()
    img.save(buffer, format="JPEG", exif=exif.tobytes())
    out = preprocess(buffer.getvalue(), 20).float()
    # Upright it is 20 wide x 40 tall with blue on top; the centre crop is half blue (top),
    # half red (bottom). Ignoring EXIF would give blue left, red right.
    assert out[2, :8].mean() > 200 and out[0, :8].mean() < 60
    assert out[0, -8:].mean() > 200 and out[2, -8:].mean() < 60


def test_transparency_becomes_white():
    img = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    assert preprocess(img, 32).float().mean() > 250


def test_the_input_size_is_the_median_shorter_side_clamped_to_a_multiple_of_32():
    assert auto_input_size([100, 120, 140]) == 128
    assert auto_input_size([10, 12]) == 32
    assert auto_input_size([1000, 3000]) == 224
    assert auto_input_size([]) == 224


def test_normalisation_uses_the_given_mean_and_std():
    batch = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    x = normalize(batch, [0.5, 0.5, 0.5], [0.25, 0.5, 1.0])
    assert torch.allclose(x[0, :, 0, 0], torch.tensor([2.0, 1.0, 0.5]))


def test_unreadable_images_are_skipped_with_a_warning():
    good = Image.new("RGB", (8, 8))
    cache, ok, warnings = build_cache([good, b"junk", good], 8)
    assert cache.shape == (2, 3, 8, 8) and ok == [0, 2]
    assert len(warnings) == 1 and warnings[0].startswith("item 1:")


def test_augmentation_keeps_the_shape_and_mostly_the_content():
    rng = np.random.default_rng(0)
    batch = normalize(
        torch.from_numpy(rng.integers(0, 255, (8, 3, 32, 32), dtype=np.uint8)), [0.5] * 3, [0.5] * 3
    )
    out = augment(batch, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape and torch.isfinite(out).all()
    assert not torch.equal(out, batch)
    flat = torch.full((2, 3, 16, 16), 0.3)
    assert torch.allclose(augment(flat, torch.Generator().manual_seed(1)), flat, atol=1e-5)
