"""Calibration sources: image folders (with class labels), .npz/.npy, synthetic; preprocessing and split."""

import numpy as np
import pytest
from PIL import Image

from edgecnn.config.recipes import load_recipe
from edgecnn.data.calibration import load_calibration, normalise, resize_crop

RECIPE = load_recipe("resnet")


def _folder(root, classes=("cat", "dog"), per_class=5, size=(50, 40)):
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", size, color=(40 * c, 10 * i, 200)).save(root / name / f"{i}.png")
    return root


def test_folder_with_class_subfolders_gives_labels(tmp_path):
    calib, held = load_calibration(_folder(tmp_path / "imgs"), (3, 32, 32), RECIPE, count=6, holdout=4)
    assert calib.images.shape == (6, 3, 32, 32) and calib.images.dtype == np.float32
    assert len(held) == 4 and set(calib.labels) | set(held.labels) == {0, 1}
    assert calib.class_names == ("cat", "dog") and not calib.synthetic
    assert len(calib.sha256) == 64


def test_resize_then_centre_crop_keeps_the_centre():
    image = Image.new("RGB", (100, 60), (0, 0, 0))
    image.paste((255, 255, 255), (40, 20, 60, 40))  # a white square in the middle
    pixels = resize_crop(image, 32, 32, RECIPE)
    assert pixels.shape == (32, 32, 3)
    assert pixels[16, 16].min() == 255 and pixels[0, 0].max() == 0


def test_normalise_uses_recipe_mean_and_std():
    pixels = np.full((1, 2, 2, 3), 255, np.uint8)
    x = normalise(pixels, RECIPE)
    expected = (1 - np.array(RECIPE.mean)) / np.array(RECIPE.std)
    np.testing.assert_allclose(x[0, :, 0, 0], expected, rtol=1e-6)


def test_npz_uint8_nhwc_is_resized_and_normalised(tmp_path):
    np.savez(tmp_path / "c.npz", images=np.full((10, 48, 48, 3), 128, np.uint8), labels=np.arange(10))
    calib, held = load_calibration(tmp_path / "c.npz", (3, 32, 32), RECIPE, count=6, holdout=4)
    assert calib.images.shape == (6, 3, 32, 32) and len(held) == 4
    assert sorted([*calib.labels, *held.labels]) == list(range(10))


def test_npy_float_is_taken_as_is(tmp_path):
    data = np.random.default_rng(0).standard_normal((8, 1, 16, 16)).astype(np.float32)
    np.save(tmp_path / "c.npy", data)
    calib, _ = load_calibration(tmp_path / "c.npy", (1, 16, 16), RECIPE, count=8, holdout=0)
    assert calib.labels is None
    np.testing.assert_array_equal(np.sort(calib.images.ravel()), np.sort(data.ravel()))


def test_synthetic_is_deterministic_and_flagged():
    a, _ = load_calibration("synthetic", (3, 24, 24), RECIPE, count=4, holdout=2, seed=3)
    b, _ = load_calibration(None, (3, 24, 24), RECIPE, count=4, holdout=2, seed=3)
    assert a.synthetic and a.source == "synthetic"
    np.testing.assert_array_equal(a.images, b.images)


def test_split_never_overlaps(tmp_path):
    data = np.arange(20, dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 4, 4), np.float32)
    np.save(tmp_path / "c.npy", data)
    calib, held = load_calibration(tmp_path / "c.npy", (1, 4, 4), RECIPE, count=100, holdout=8)
    ids_calib, ids_held = set(calib.images[:, 0, 0, 0]), set(held.images[:, 0, 0, 0])
    assert not ids_calib & ids_held and len(ids_calib) + len(ids_held) == 20
    assert len(held) == 5  # asked for 8, but a quarter of 20 at most when data is short


def test_calib_size_must_be_positive():
    from edgecnn.errors import UsageError

    with pytest.raises(UsageError, match="--calib-size"):
        load_calibration(None, (3, 8, 8), RECIPE, count=0, holdout=0)


@pytest.mark.parametrize(
    ("mode", "color", "channels"),
    [
        ("RGB", (200, 100, 50), 3),
        ("RGBA", (200, 100, 50, 0), 3),  # alpha dropped, even when fully transparent
        ("CMYK", (0, 128, 200, 0), 3),
        ("P", None, 3),
        ("1", 1, 1),
        ("L", 77, 1),
        ("LA", (77, 10), 1),
        ("I;16", 40000, 1),
    ],
)
def test_every_image_mode_is_read_as_grey_or_rgb(tmp_path, mode, color, channels):
    """Colour modes (palette, CMYK, with alpha) come in as RGB, grey ones (bilevel, 16-bit, with alpha) as L; the
    pixel values survive: RGB equals PIL's own RGB conversion, grey is scaled to 8 bits."""
    image = Image.new("RGB", (8, 8), (200, 100, 50)).quantize(4) if mode == "P" else Image.new(mode, (8, 8), color)
    image.save(tmp_path / "a.tiff" if mode in ("CMYK", "I;16") else tmp_path / "a.png")
    data, _ = load_calibration(tmp_path, (channels, 8, 8), load_recipe("default"), 1, 0)
    mean, std = load_recipe("default").channel_stats(channels)
    pixels = data.images[0] * np.array(std)[:, None, None] + np.array(mean)[:, None, None]
    expected = {"1": 1.0, "L": 77 / 255, "LA": 77 / 255, "I;16": round(40000 / 65535 * 255) / 255}.get(mode)
    if expected is None:
        rgb = np.asarray(image.convert("RGB"), np.float32)[0, 0] / 255
        expected = rgb[:, None, None]
    np.testing.assert_allclose(pixels, np.broadcast_to(expected, pixels.shape), atol=1 / 255)
