"""Calibration data from an image folder, a .npy/.npz file, or synthetic noise, preprocessed as the recipe says.

Whatever the source, the result is float32 N×C×H×W, normalised with the
recipe's mean and std, split into a calibration part and a held-out part
(used for the fp32-vs-int8 agreement), with a hash of the source.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.config.recipes import Recipe
from edgecnn.errors import UsageError, check_file, reading

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff", ".gif")
SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class CalibrationSet:
    """Preprocessed samples with optional labels, and where they came from."""

    images: np.ndarray | dict[str, np.ndarray]  # float32 N×C×H×W, normalised; one per input name for several
    # the ground truth, one kind (see label_kind): a class per sample (N), per pixel (N×H×W, an .npz's 'masks')
    # or boxes (N×M×5 float: corner x0, y0, x1, y1 in input pixels and the class, −1 in padding rows)
    labels: np.ndarray | None
    source: str
    sha256: str
    synthetic: bool
    class_names: tuple[str, ...] = ()
    bit_depths: tuple[int, ...] = ()  # bits per sample of the image files read (16-bit ones are scaled to 8)

    def __len__(self) -> int:
        images = self.images
        return len(next(iter(images.values()))) if isinstance(images, dict) else len(images)

    def subset(self, index: np.ndarray | slice) -> CalibrationSet:
        """The samples at ``index``, same source."""
        labels = None if self.labels is None else self.labels[index]
        images = self.images
        images = {k: v[index] for k, v in images.items()} if isinstance(images, dict) else images[index]
        return CalibrationSet(
            images, labels, self.source, self.sha256, self.synthetic, self.class_names, self.bit_depths
        )


def samples_within(images: np.ndarray | dict[str, np.ndarray], pixel_budget: int, most: int | None = None) -> int:
    """How many of the first samples of ``images`` (N×C×H×W; several inputs: the largest's) hold about
    ``pixel_budget`` pixels of one channel in all — at most ``most`` and all of them, at least one: a statistic over
    the samples' positions then costs as much at any input size."""
    arrays = list(images.values()) if isinstance(images, dict) else [images]
    pixels = max(max(1, int(a[0].size // max(a.shape[1], 1))) if a.ndim > 1 else 1 for a in arrays)
    count = len(arrays[0])
    return max(1, min(most or count, pixel_budget // pixels, count))


def normalise(pixels: np.ndarray, recipe: Recipe) -> np.ndarray:
    """uint8 N×H×W×C pixels → float32 N×C×H×W with the recipe's mean and std.

    Each channel's 256 values are computed once (the same float32 arithmetic, so the same bits) and looked up
    straight into the NCHW array: one pass over the pixels instead of four."""
    channels = pixels.shape[-1]
    mean, std = recipe.channel_stats(channels)
    if pixels.dtype != np.uint8:
        x = pixels.astype(np.float32) / 255.0
        x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    levels = np.arange(256, dtype=np.float32)[:, None] / 255.0
    table = (levels - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)  # 256 × C
    out = np.empty((pixels.shape[0], channels, *pixels.shape[1:3]), np.float32)
    for channel in range(channels):
        np.take(table[:, channel], pixels[..., channel], out=out[:, channel])
    return out


def _resample(name: str) -> int:
    from PIL import Image

    return {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC, "nearest": Image.NEAREST}[name]


def resize_crop(image, height: int, width: int, recipe: Recipe) -> np.ndarray:
    """Resize a PIL image so it covers (H, W)/crop_fraction, then centre-crop H×W; returns uint8 H×W×C."""
    scale = max(height / recipe.crop_fraction / image.height, width / recipe.crop_fraction / image.width)
    new_w, new_h = max(width, round(image.width * scale)), max(height, round(image.height * scale))
    image = image.resize((new_w, new_h), _resample(recipe.interpolation))
    left, top = (new_w - width) // 2, (new_h - height) // 2
    array = np.asarray(image.crop((left, top, left + width, top + height)))
    return array[..., None] if array.ndim == 2 else array


GREY_MODES = ("1", "L", "LA", "La", "I", "F")  # and I;16*: one channel, any alpha dropped


def _image_channels(mode: str) -> int:
    """1 for grey images (bilevel, 8/16-bit, float, with or without alpha), 3 for colour ones (RGB, RGBA,
    palette, CMYK, YCbCr, LAB, HSV: all read as RGB, alpha dropped)."""
    return 1 if mode in GREY_MODES or mode.startswith("I;16") else 3


def _bit_depth(mode: str) -> int:
    """Bits per sample PIL read: 16 for 16-bit grey (``I;16*``, ``I``), 32 for float, else 8."""
    return 16 if mode.startswith("I;16") or mode == "I" else 32 if mode == "F" else 8


def _to_8bit(image: Any) -> Any:
    """A 16-bit or float grey image scaled to 8 bits over its full range (``convert('L')`` would clip)."""
    from PIL import Image

    depth = _bit_depth(image.mode)
    if depth == 8:
        return image
    array = np.asarray(image, dtype=np.float64)
    top = 65535.0 if depth == 16 else max(float(array.max()), 1.0)
    return Image.fromarray(np.clip(np.rint(array / top * 255), 0, 255).astype(np.uint8), "L")


def _load_image(path: Path, channels: int, height: int, width: int, recipe: Recipe) -> tuple[np.ndarray, int]:
    """The image at ``path`` resized and cropped for the model (uint8 H×W×C) and the bit depth it had."""
    from PIL import Image

    fix = "remove it from the folder or save it as a PNG or JPEG"
    with reading(path, "calibration image", fix), Image.open(path) as image:
        image.load()
        found = _image_channels(image.mode)
        if found != channels:
            kind, wanted = ("grey", "colour (RGB)") if found == 1 else ("colour", "grey")
            raise UsageError(
                f"calibration image {path} is {kind} (PIL mode {image.mode}) but the model takes {channels} "
                f"channel(s): give {wanted} images"
            )
        depth = _bit_depth(image.mode)
        image = _to_8bit(image).convert("L" if channels == 1 else "RGB")
        return resize_crop(image, height, width, recipe), depth


def _list_images(folder: Path) -> tuple[list[Path], list[int] | None, tuple[str, ...]]:
    try:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    except OSError as error:
        raise UsageError(f"calibration folder {folder} is unreadable: {error.strerror or error}") from None
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        others = f" ({len(files)} other files, none with an image suffix)" if files else ""
        raise UsageError(
            f"calibration folder {folder} has no images{others}; put images ({', '.join(sorted(IMAGE_SUFFIXES))}) "
            "in it, one sub-folder per class for labels"
        )
    parents = {p.parent for p in images}
    if all(p.parent != folder and p.parent.parent == folder for p in images) and len(parents) > 1:
        classes = tuple(sorted(p.name for p in parents))
        return images, [classes.index(p.parent.name) for p in images], classes
    return images, None, ()


def _hash_files(paths: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _from_folder(
    folder: Path, shape: tuple[int, int, int], recipe: Recipe, limit: int, rng: np.random.Generator
) -> CalibrationSet:
    paths, labels, classes = _list_images(folder)
    order = rng.permutation(len(paths))[:limit]
    chosen = [paths[i] for i in order]
    channels, height, width = shape
    loaded = [_load_image(p, channels, height, width, recipe) for p in chosen]
    pixels = np.stack([image for image, _ in loaded])
    label_array = None if labels is None else np.asarray([labels[i] for i in order], np.int64)
    depths = tuple(sorted({depth for _, depth in loaded}))
    return CalibrationSet(
        normalise(pixels, recipe), label_array, str(folder), _hash_files(sorted(chosen), folder), False, classes, depths
    )


TRUTH_KEYS = ("labels", "masks", "boxes")  # an .npz's ground truth: one of these (boxes with their 'classes')


def label_kind(labels: np.ndarray) -> str:
    """The kind of ground truth a data set's ``labels`` are: ``classes`` (N), ``masks`` (N×H×W integers) or
    ``boxes`` (N×M×5 floats)."""
    if labels.ndim == 1:
        return "classes"
    return "boxes" if np.issubdtype(labels.dtype, np.floating) else "masks"


def _checked_boxes(
    path: Path, boxes: np.ndarray, classes: np.ndarray, count: int, size: tuple[int, int], resized: bool
) -> np.ndarray:
    """N×M×4 corner boxes (x0, y0, x1, y1 in input pixels) and N×M integer classes (−1 pads an image with fewer
    boxes) as one N×M×5 float64 array, padding rows zeroed; images must not be resized (boxes would not fit)."""
    if boxes.dtype.kind not in "iuf" or boxes.ndim != 3 or boxes.shape[0] != count or boxes.shape[2] != 4:
        raise UsageError(
            f"{path}: boxes must be N×M×4 numbers (corner x0, y0, x1, y1 in input pixels, N={count} images), got "
            f"{boxes.dtype} with shape {boxes.shape}"
        )
    if classes.dtype.kind not in "iu" or classes.shape != boxes.shape[:2]:
        raise UsageError(
            f"{path}: classes must be N×M integers, a class per box of the {'×'.join(map(str, boxes.shape))} boxes "
            f"(−1 for padding), got {classes.dtype} with shape {classes.shape}"
        )
    real = classes >= 0
    if (classes < -1).any():
        raise UsageError(f"{path}: classes go down to {int(classes.min())}: give a class ≥ 0 per box, −1 for padding")
    if not real.any():
        raise UsageError(f"{path}: holds no boxes (every class is −1): give at least one labelled box")
    values = boxes[real].astype(np.float64)
    height, width = size
    if not np.isfinite(values).all():
        raise UsageError(f"{path}: boxes hold NaN or infinity; give finite corner x0, y0, x1, y1")
    if resized:
        raise UsageError(f"{path}: boxes are in input pixels, so the images must be {height}×{width} (the model's)")
    inverted = int(np.count_nonzero((values[:, 2:] <= values[:, :2]).any(1)))
    if inverted:
        raise UsageError(
            f"{path}: {inverted} boxes have x1 ≤ x0 or y1 ≤ y0: give corners x0, y0, x1, y1 (not x, y, width, height)"
        )
    if values.max() <= 1 and min(height, width) > 1:
        raise UsageError(
            f"{path}: every box coordinate is ≤ 1 (normalised?): give them in input pixels ({width}×{height})"
        )
    outside = int(
        np.count_nonzero((values < 0).any(1) | (values[:, [0, 2]] > width).any(1) | (values[:, [1, 3]] > height).any(1))
    )
    if outside:
        raise UsageError(
            f"{path}: {outside} boxes reach outside the {width}×{height} input: give input pixels (clipped to it)"
        )
    return box_truth(boxes, classes)


def box_truth(boxes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Label boxes (N×M×4 corners) and their classes (N×M, −1 padding) as the N×M×5 float64 ground truth a data
    set carries, padding rows zeroed."""
    truth = np.concatenate([np.asarray(boxes, np.float64), np.asarray(classes, np.float64)[..., None]], axis=-1)
    truth[truth[..., 4] < 0] = [0, 0, 0, 0, -1]
    return truth


def _checked_labels(path: Path, labels: np.ndarray, count: int, size: tuple[int, int], resized: bool) -> np.ndarray:
    """N integer labels, or N×H×W integer masks at the model's input size (``size``), of images that were not
    resized (masks would no longer fit them)."""
    if labels.ndim in (1, 3) and labels.shape[:1] != (count,):
        raise UsageError(
            f"{path}: {labels.shape[0]} labels for {count} images: give one label (or mask) per "
            "image, in the images' order"
        )
    if not np.issubdtype(labels.dtype, np.integer) or labels.ndim not in (1, 3):
        raise UsageError(
            f"{path}: labels must be N integers (masks: N×H×W integers), got {labels.dtype} with shape {labels.shape}"
        )
    if labels.dtype.kind == "u" and labels.size and labels.max() > np.iinfo(np.int64).max:  # would wrap negative
        raise UsageError(f"{path}: labels go up to {labels.max()}, beyond any class: give class indices")
    if labels.ndim == 3 and (tuple(labels.shape[1:]) != size or resized):
        raise UsageError(
            f"{path}: masks must be N×{size[0]}×{size[1]}, with images of that size (the model's input), got masks "
            f"of {labels.shape[1]}×{labels.shape[2]}{' and images to resize' if resized else ''}"
        )
    return labels.astype(np.int64)


def _from_array_file(path: Path, shape: tuple[int, int, int], recipe: Recipe) -> CalibrationSet:
    labels = box_classes = None
    with reading(path, "calibration file", "give a .npy or an .npz with an 'images' array (numpy.savez)"):
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                if "images" not in loaded.files:
                    raise UsageError(
                        f"{path} has no 'images' array (it has: {', '.join(loaded.files) or 'nothing'}); save the "
                        "images as 'images' (and the labels, if any, as 'labels', per-pixel ones as 'masks', or "
                        "'boxes' with their 'classes')"
                    )
                unread = [key for key in loaded.files if key not in ("images", "classes", *TRUTH_KEYS)]
                if unread:  # a misspelt 'labels' would leave the data without its ground truth, unsaid
                    raise UsageError(
                        f"{path} holds {', '.join(repr(key) for key in unread)}, which edgecnn does not read: save "
                        "the ground truth as 'labels', 'masks' or 'boxes' with their 'classes', and nothing else"
                    )
                truth = [key for key in TRUTH_KEYS if key in loaded.files]
                if len(truth) > 1:
                    named = " and ".join(f"'{key}'" for key in truth)
                    raise UsageError(f"{path} has both {named}: keep the one for the model's task")
                if ("boxes" in loaded.files) != ("classes" in loaded.files):
                    given, missing = ("boxes", "classes") if "boxes" in loaded.files else ("classes", "boxes")
                    raise UsageError(
                        f"{path} has '{given}' but no '{missing}': label boxes need both (N×M×4 corner boxes, N×M "
                        "integer classes with −1 padding)"
                    )
                images = loaded["images"]
                labels = loaded[truth[0]] if truth else None
                box_classes = loaded["classes"] if "boxes" in loaded.files else None
        else:
            images = loaded
    channels, height, width = shape
    if images.dtype == np.uint8 and images.ndim == 4:
        if images.shape[-1] != channels:
            raise UsageError(f"{path}: uint8 images must be N×H×W×C with C={channels}, got shape {images.shape}")
        if 0 in images.shape[1:3]:  # no pixel to resize from
            raise UsageError(f"{path}: uint8 images must be at least 1×1 pixels, got shape {images.shape}")
        from PIL import Image

        pixels = (
            images
            if images.shape[1:3] == (height, width)
            else np.stack(
                [
                    resize_crop(Image.fromarray(img.squeeze(-1) if channels == 1 else img), height, width, recipe)
                    for img in images
                ]
            )
        )
        data = normalise(pixels, recipe)
    elif images.dtype == np.float32 and images.ndim == 4:
        if images.shape[1:] != (channels, height, width):
            raise UsageError(
                f"{path}: float32 images must be N×{channels}×{height}×{width} (normalised), got shape {images.shape}; "
                "save them at the model's input size, or as uint8 N×H×W×C pixels (resized for you)"
            )
        _check_values(images, f"{path}: images")
        data = np.ascontiguousarray(images)
    else:
        raise UsageError(
            f"{path}: images must be float32 N×C×H×W (normalised) or uint8 N×H×W×C, "
            f"got {images.dtype} with shape {images.shape}; save them as one of those"
        )
    if len(data) == 0:
        raise UsageError(f"{path}: holds no images; give a file with at least one")
    if labels is not None:
        resized = images.dtype == np.uint8 and images.shape[1:3] != (height, width)
        if box_classes is not None:
            labels = _checked_boxes(path, labels, box_classes, len(data), (height, width), resized)
        else:
            labels = _checked_labels(path, np.asarray(labels), len(data), (height, width), resized)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return CalibrationSet(data, labels, str(path), digest, False)


def synthetic(shape: tuple[int, int, int], count: int, recipe: Recipe, seed: int = 0) -> CalibrationSet:
    """Smooth random images (noise upsampled from 1/8 resolution): valid input, meaningless accuracy."""
    channels, height, width = shape
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (count, max(1, height // 8), max(1, width // 8), channels), dtype=np.uint8)
    pixels = coarse.repeat(8, axis=1).repeat(8, axis=2)[:, :height, :width]
    if pixels.shape[1:3] != (height, width):
        pixels = np.pad(pixels, ((0, 0), (0, height - pixels.shape[1]), (0, width - pixels.shape[2]), (0, 0)), "edge")
    # int32 draws the very stream int64 did (a range this small takes 32-bit draws either way), in a third of
    # the time and memory; summed in int16
    noise = rng.integers(-16, 17, pixels.shape, dtype=np.int32).astype(np.int16)
    noise += pixels
    pixels = np.clip(noise, 0, 255, out=noise).astype(np.uint8)
    digest = hashlib.sha256(f"synthetic:{seed}:{count}:{shape}".encode()).hexdigest()
    return CalibrationSet(normalise(pixels, recipe), None, SYNTHETIC, digest, True)


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (MemAvailable on Linux, physical memory elsewhere)."""
    import os

    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(shape: tuple[int, int, int], samples: int) -> None:
    """Refuse, before allocating, ``samples`` images of ``shape`` that would not fit in memory (the pixels and
    their float32 copies take about 12 bytes per value, more than half of what is available)."""
    need = samples * int(np.prod(shape, dtype=np.int64)) * 12
    free = available_memory()
    if free is not None and need > free // 2:
        raise UsageError(
            f"{samples} samples of {'×'.join(map(str, shape))} need about {need / 2**30:.1f} GiB, more than half "
            f"of the {free / 2**30:.1f} GiB available: lower --calib-size/--holdout or the input size"
        )


GROUND_TRUTH = (*TRUTH_KEYS, "classes")  # .npz keys that hold ground truth, never an input
INPUT_KEY = "input:"  # an .npz key for an input by name, whatever the name: 'input:labels'


def _input_key(path: Path, name: str, files: list[str]) -> str | None:
    """The key of ``name``'s array in an .npz of ``files``: 'input:NAME', else NAME (unless NAME is a key of
    ground truth); None when there is none."""
    if INPUT_KEY + name in files:
        return INPUT_KEY + name
    if name in GROUND_TRUTH:
        if name in files:
            raise UsageError(
                f"{path}: '{name}' is the key of ground truth; save the array of the model's input '{name}' as "
                f"'{INPUT_KEY}{name}' (numpy.savez(..., **{{'{INPUT_KEY}{name}': array}}))"
            )
        return None
    return name if name in files else None


def _inputs_from_npz(path: Path, shapes: dict[str, tuple[int, int, int]]) -> CalibrationSet:
    """One float32 N×C×H×W array (normalised) per input name from an ``.npz`` (key NAME or 'input:NAME'), optional
    ``labels``."""
    fix = (
        f"give an .npz with one float32 N×C×H×W array per input ({', '.join(shapes)}), e.g. numpy.savez; "
        f"an input named {' or '.join(GROUND_TRUTH)} as '{INPUT_KEY}NAME'"
    )
    if path.suffix.lower() != ".npz":
        raise UsageError(f"calibration source {path}: a model with several inputs calibrates from an .npz; {fix}")
    with reading(path, "calibration file", fix), np.load(path, allow_pickle=False) as loaded:
        keys = {name: _input_key(path, name, loaded.files) for name in shapes}
        missing = [name for name, key in keys.items() if key is None]
        if missing:
            raise UsageError(
                f"{path} has no array for input(s) {', '.join(missing)} (it has: {', '.join(loaded.files)}); {fix}"
            )
        arrays = {name: loaded[key] for name, key in keys.items()}
        truth = [key for key in GROUND_TRUTH if key in loaded.files]
    for name, array in arrays.items():
        if array.dtype != np.float32 or array.shape[1:] != shapes[name]:
            wanted = "×".join(map(str, shapes[name]))
            raise UsageError(
                f"{path}: input '{name}' must be float32 N×{wanted} (normalised), got {array.dtype} {array.shape}"
            )
        _check_values(array, f"{path}: the values of input '{name}'")
    counts = {len(a) for a in arrays.values()}
    if len(counts) != 1 or 0 in counts:
        raise UsageError(f"{path}: every input needs the same number of samples (≥ 1), got {sorted(counts)}")
    if truth:
        raise UsageError(
            f"{path}: ground truth ('{truth[0]}') applies to single-input models; leave it out for several inputs"
        )
    return CalibrationSet(arrays, None, str(path), hashlib.sha256(path.read_bytes()).hexdigest(), False)


def load_input_calibration(
    source: str | Path | None,
    shapes: dict[str, tuple[int, int, int]],
    recipe: Recipe,
    count: int,
    holdout: int,
    seed: int = 0,
) -> tuple[CalibrationSet, CalibrationSet]:
    """Calibration and held-out samples for a model with several inputs (``shapes``: name → C, H, W): an ``.npz``
    with one array per input name, or synthetic images per input. Split like :func:`load_calibration`."""
    if count < 1:
        raise UsageError(f"--calib-size must be ≥ 1, got {count}")
    _named(source)
    if source is None or str(source) == SYNTHETIC:
        for shape in shapes.values():
            check_memory(shape, count + holdout)
        parts = [synthetic(shape, count + holdout, recipe, seed + i) for i, shape in enumerate(shapes.values())]
        images = {name: part.images for name, part in zip(shapes, parts, strict=True)}
        digest = hashlib.sha256(f"synthetic:{seed}:{count + holdout}:{shapes}".encode()).hexdigest()
        data = CalibrationSet(images, None, SYNTHETIC, digest, True)
    else:
        path = Path(source)
        if not path.is_file():
            raise UsageError(f"calibration source {path} is not a file: a model with several inputs needs an .npz")
        data = _inputs_from_npz(path, shapes)
    n = len(data)
    held = holdout if n >= count + holdout else (min(holdout, n // 4) if n >= 2 else 0)
    order = np.arange(n) if data.synthetic else np.random.default_rng(seed).permutation(n)
    return data.subset(order[held : held + count]), data.subset(order[:held])


MAX_NORMALISED = 1e4  # normalised pixels sit within a few units of 0; raw 0–255 pixels fit too


def _check_values(array: np.ndarray, what: str) -> None:
    """Float calibration data must be finite and of a plausible size (1e38 overflows every statistic)."""
    if not np.isfinite(array).all():
        raise UsageError(f"{what} hold NaN or infinity; give finite data")
    top = float(np.abs(array).max()) if array.size else 0.0
    if top > MAX_NORMALISED:
        raise UsageError(
            f"{what} reach {top:.3g}, beyond any image's values (|x| ≤ {MAX_NORMALISED:g}): is the file corrupt?"
        )


def _named(source: str | Path | None, what: str = "calibration source") -> None:
    """An empty name is no source (``Path('')`` would be the current directory, read as an image folder)."""
    if source is not None and not str(source).strip():
        raise UsageError(f"the {what} is an empty name: give an image folder, a .npy/.npz file or 'synthetic'")


def check_source(source: str | Path | None, what: str = "calibration source") -> None:
    """Fail before any work when ``source`` names no image folder and no file ('synthetic' and None are fine)."""
    _named(source, what)
    if source is not None and str(source) != SYNTHETIC and not os.path.isdir(source):
        check_file(source, what)


def load_calibration(
    source: str | Path | None, shape: tuple[int, int, int], recipe: Recipe, count: int, holdout: int, seed: int = 0
) -> tuple[CalibrationSet, CalibrationSet]:
    """Load up to ``count`` calibration samples and up to ``holdout`` held-out samples from ``source``.

    ``source`` is an image folder (class sub-folders give labels), a ``.npy``/``.npz``
    file, ``'synthetic'`` or None (synthetic). The split is random but seeded.
    """
    if count < 1:
        raise UsageError(f"--calib-size must be ≥ 1, got {count}")
    _named(source)
    rng = np.random.default_rng(seed)
    if source is None or str(source) == SYNTHETIC or os.path.isdir(source):
        check_memory(shape, count + holdout)
    if source is None or str(source) == SYNTHETIC:
        data = synthetic(shape, count + holdout, recipe, seed)
    else:
        path = Path(source)
        if os.path.isdir(path):
            data = _from_folder(path, shape, recipe, count + holdout, rng)
        elif path.suffix.lower() in (".npy", ".npz"):
            data = _from_array_file(check_file(path, "calibration source"), shape, recipe)
        else:
            check_file(path, "calibration source")
            raise UsageError(f"calibration source {path} must be an image folder, a .npy/.npz file or 'synthetic'")
    n = len(data)
    # Hold out what was asked when there is enough; otherwise at most a quarter, keeping the rest to calibrate.
    held = holdout if n >= count + holdout else (min(holdout, n // 4) if n >= 2 else 0)
    order = rng.permutation(n) if data.synthetic is False and not os.path.isdir(str(source)) else np.arange(n)
    calib_index, held_index = order[held : held + count], order[:held]
    return data.subset(calib_index), data.subset(held_index)
