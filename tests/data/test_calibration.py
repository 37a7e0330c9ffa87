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


def test_normalise_gives_the_bits_of_the_float32_formula():
    """The lookup table computes what (pixels / 255 − mean) / std in float32 does, to the bit, for every level."""
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=-1)[:, :, ::-1]  # a strided view
    mean, std = np.asarray(RECIPE.mean, np.float32), np.asarray(RECIPE.std, np.float32)
    expected = ((pixels.astype(np.float32) / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    x = normalise(pixels, RECIPE)
    assert x.dtype == np.float32 and x.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(x, expected)


def test_synthetic_images_are_the_ones_exports_always_used():
    """Pinned bytes: a faster draw must give the same images (the manifests' figures depend on them)."""
    import hashlib

    from edgecnn.data.calibration import synthetic

    pinned = {
        ((3, 40, 56), 5, 3, "mobilenet"): "4e800886aaedd23eb87cf2e08a44d2c79904b569549dd97784677f854af80449",
        ((1, 30, 20), 4, 0, "default"): "918b68c793c31569a1bf13731f5f4d7d64135a5fc600583716ff1b42f359b4e2",
    }
    for (shape, count, seed, recipe), digest in pinned.items():
        images = synthetic(shape, count, load_recipe(recipe), seed).images
        assert hashlib.sha256(images.tobytes()).hexdigest() == digest, shape


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


def _boxes_npz(path, count=8, **arrays):
    """An .npz of ``count`` float32 8×8 grey images, image i filled with i, and one label box per image of class
    i % 3 (a second row of padding), unless ``arrays`` replaces them."""
    images = np.arange(count, dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 8, 8), np.float32)
    boxes = np.zeros((count, 2, 4), np.float32)
    boxes[:, 0] = [1, 2, 5, 7]
    classes = np.full((count, 2), -1, np.int64)
    classes[:, 0] = np.arange(count) % 3
    np.savez(path, **{"images": images, "boxes": boxes, "classes": classes, **arrays})
    return path


def test_npz_boxes_are_labels_split_with_their_images(tmp_path):
    """'boxes' (N×M×4 corners) and 'classes' (N×M, −1 padding) become N×M×5 ground truth, split as the images."""
    from edgecnn.data.calibration import label_kind

    calib, held = load_calibration(_boxes_npz(tmp_path / "b.npz"), (1, 8, 8), RECIPE, count=6, holdout=2)
    assert calib.labels.shape == (6, 2, 5) and label_kind(calib.labels) == "boxes" and len(held.labels) == 2
    for part in (calib, held):
        image_ids = part.images[:, 0, 0, 0].astype(int)
        assert part.labels[:, 0].tolist() == [[1, 2, 5, 7, i % 3] for i in image_ids]
        assert part.labels[:, 1].tolist() == [[0, 0, 0, 0, -1]] * len(part)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"boxes": np.ones((8, 2, 3), np.float32)}, "boxes must be N×M×4 numbers \\(corner x0, y0, x1, y1"),
        ({"boxes": np.ones((7, 2, 4), np.float32)}, "boxes must be N×M×4 numbers .* N=8 images"),
        ({"classes": np.zeros((8, 2), np.float32)}, "classes must be N×M integers, a class per box of the 8×2×4"),
        ({"classes": np.zeros((8, 3), np.int64)}, "classes must be N×M integers"),
        ({"classes": np.full((8, 2), -2, np.int64)}, "classes go down to -2: give a class ≥ 0 per box, −1 for"),
        ({"classes": np.full((8, 2), -1, np.int64)}, "holds no boxes \\(every class is −1\\)"),
        ({"boxes": np.full((8, 2, 4), np.nan, np.float32)}, "boxes hold NaN or infinity"),
        ({"boxes": np.tile(np.float32([1, 1, 4, 0]), (8, 2, 1))}, "8 boxes have x1 ≤ x0 or y1 ≤ y0: give corners"),
        ({"boxes": np.tile(np.float32([0.1, 0.1, 0.5, 0.9]), (8, 2, 1))}, "every box coordinate is ≤ 1 \\(normalised"),
        ({"boxes": np.tile(np.float32([1, 1, 9, 4]), (8, 2, 1))}, "8 boxes reach outside the 8×8 input"),
        ({"images": np.zeros((8, 16, 16, 1), np.uint8)}, "boxes are in input pixels, so the images must be 8×8"),
        ({"masks": np.zeros((8, 8, 8), np.int64)}, "has both 'masks' and 'boxes': keep the one"),
    ],
)
def test_bad_label_boxes_are_one_line_errors(tmp_path, arrays, message):
    from edgecnn.errors import UsageError

    path = _boxes_npz(tmp_path / "b.npz", **arrays)
    with pytest.raises(UsageError, match=message) as error:
        load_calibration(path, (1, 8, 8), RECIPE, count=8, holdout=0)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


@pytest.mark.parametrize(("kept", "missing"), [("boxes", "classes"), ("classes", "boxes")])
def test_label_boxes_need_their_classes(tmp_path, kept, missing):
    from edgecnn.errors import UsageError

    full = np.load(_boxes_npz(tmp_path / "full.npz"))
    np.savez(tmp_path / "b.npz", images=full["images"], **{kept: full[kept]})
    with pytest.raises(UsageError, match=f"has '{kept}' but no '{missing}': label boxes need both"):
        load_calibration(tmp_path / "b.npz", (1, 8, 8), RECIPE, count=8, holdout=0)


def test_several_inputs_take_no_ground_truth_but_may_be_named_like_it(tmp_path):
    """Label boxes beside several inputs are an error (their task reads one image input); an input that is
    itself named 'boxes' is saved as 'input:boxes' (the plain key is ground truth, and the error says so)."""
    from edgecnn.data.calibration import load_input_calibration
    from edgecnn.errors import UsageError

    image, boxes = np.zeros((4, 1, 8, 8), np.float32), np.ones((4, 1, 2, 4), np.float32)
    shapes = {"image": (1, 8, 8), "boxes": (1, 2, 4)}
    np.savez(tmp_path / "two.npz", image=image, **{"input:boxes": boxes})
    calib, _ = load_input_calibration(tmp_path / "two.npz", shapes, RECIPE, 4, 0)
    assert set(calib.images) == {"image", "boxes"} and calib.labels is None
    np.savez(tmp_path / "plain.npz", image=image, boxes=boxes)
    with pytest.raises(UsageError, match="'boxes' is the key of ground truth; save the array of the model's input"):
        load_input_calibration(tmp_path / "plain.npz", shapes, RECIPE, 4, 0)
    labelled = {"input:boxes": boxes, "classes": np.zeros((4, 1), np.int64)}
    np.savez(tmp_path / "labelled.npz", image=image, **labelled)
    with pytest.raises(UsageError, match="ground truth \\('classes'\\) applies to single-input models"):
        load_input_calibration(tmp_path / "labelled.npz", shapes, RECIPE, 4, 0)
    np.savez(tmp_path / "masks.npz", image=image, masks=np.zeros((4, 8, 8), np.int64), **{"input:boxes": boxes})
    with pytest.raises(UsageError, match="ground truth \\('masks'\\) applies to single-input models"):
        load_input_calibration(tmp_path / "masks.npz", shapes, RECIPE, 4, 0)
