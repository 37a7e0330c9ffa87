"""``detection``: a raw detection head decoded (``--decoder``), filtered by score (``--score-threshold``, then the
1000 best per image) and per-class NMS (``--nms-iou``), then the target's detections matched to the reference's
(same class, IoU ≥ 0.5): precision, recall and F1 against the reference, mean IoU of matched pairs and mean
absolute score change.

Decoders:
- ``yolo``: N × (4+C) × A — centre x, y, width, height, then C class scores per anchor (current YOLO exports);
- ``yolo-obj``: N × A × (5+C) — centre-xywh, objectness, then C class scores (score = objectness × class);
- ``boxes-scores``: two outputs, N × A × 4 corner boxes (x0, y0, x1, y1) and N × A × C scores, decoded already
  (SSD-style exports); :func:`joined` makes them one N × A × (4+C) head.

With label boxes in the data (an ``.npz``'s ``boxes``, N×M×4 corner x0, y0, x1, y1 in input pixels, and
``classes``, N×M integers with −1 padding), :func:`against_labels` gives both models' mAP@0.5 against them and its
drop. The definition is COCO's AP50 (pycocotools ``COCOeval`` with IoU threshold 0.5, one area range and no cap on
detections per image): per class, the detections of all images ranked by score (ties in image order), each a true
positive when it is the first to match an unmatched label box of its class with IoU ≥ 0.5 (the highest IoU, the
later box of equal ones); the precision made monotone and read at the 101 recall points 0, 0.01, …, 1 (0 beyond
the last recall reached); the mean over the classes that have label boxes. The detections are the ones the F1 is
computed on (after ``--score-threshold`` and NMS), so a high threshold truncates the curve. Checked against
pycocotools in the tests.

NumPy only: the same code runs where torch is absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgecnn.analysis.metrics import short_of

DECODERS = ("yolo", "yolo-obj", "boxes-scores")
MATCH_IOU = 0.5
MAX_CANDIDATES = 1000  # per image, the highest scores kept for NMS (a random-weight head passes every anchor)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # COCO's: where the precision is read for AP


def decode(head: np.ndarray, decoder: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Corner boxes (N×A×4), scores (N×A) and classes (N×A) of a raw head in ``decoder``'s layout."""
    from edgecnn.errors import UsageError

    head = np.asarray(head, np.float64)
    minimum = 6 if decoder == "yolo-obj" else 5
    channels = 0 if head.ndim != 3 else head.shape[1] if decoder == "yolo" else head.shape[-1]
    if channels < minimum:
        layout = {"yolo": "N×(4+C)×A", "yolo-obj": "N×A×(5+C)"}.get(decoder, "N×A×4 boxes + N×A×C scores")
        raise UsageError(
            f"the {decoder} decoder reads {layout} heads, not {'×'.join(map(str, head.shape))}: give --decoder "
            "for the head's layout, or another --task for this output"
        )
    if decoder == "yolo":
        head = head.transpose(0, 2, 1)  # N × A × (4+C)
        xywh, scores = head[..., :4], head[..., 4:]
    elif decoder == "yolo-obj":
        xywh, scores = head[..., :4], head[..., 4:5] * head[..., 5:]
    elif decoder == "boxes-scores":
        scores = head[..., 4:]
        return head[..., :4], scores.max(-1), scores.argmax(-1)
    else:
        raise UsageError(f"unknown decoder {decoder!r}; one of {', '.join(DECODERS)}")
    centre, half = xywh[..., :2], xywh[..., 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=-1)
    return boxes, scores.max(-1), scores.argmax(-1)


def joined(outputs: Mapping[str, np.ndarray]) -> tuple[str, np.ndarray]:
    """The ``boxes-scores`` pair as one head: (``"boxes+scores"`` in the outputs' names, N × A × (4+C)); the
    boxes are the N × A × 4 output."""
    from edgecnn.errors import UsageError

    names = list(outputs)
    shapes = {name: np.shape(value) for name, value in outputs.items()}
    boxes = [n for n in names if len(shapes[n]) == 3 and shapes[n][-1] == 4]
    scores = [n for n in names if n not in boxes[:1]]
    if len(names) != 2 or not boxes or shapes[scores[0]][:2] != shapes[boxes[0]][:2] or len(shapes[scores[0]]) != 3:
        shown = ", ".join(f"'{n}' {'×'.join(map(str, shapes[n]))}" for n in names)
        raise UsageError(
            f"the boxes-scores decoder reads two detection outputs, N×A×4 boxes and N×A×C scores; got {shown}: give "
            "--task BOXES=detection,SCORES=detection"
        )
    return f"{boxes[0]}+{scores[0]}", np.concatenate([outputs[boxes[0]], outputs[scores[0]]], axis=-1)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every corner box of ``a`` (M×4) with every one of ``b`` (K×4)."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy per-class non-maximum suppression, highest score first (``batched_nms``'s rule);
    one row of IoUs at a time, not the K×K matrix (gigabytes for a head of thousands of anchors)."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    suppressed = np.zeros(len(scores), bool)
    for i in order:
        if suppressed[i]:
            continue
        kept.append(int(i))
        suppressed |= (iou_matrix(boxes[i : i + 1], boxes)[0] > iou) & (classes == classes[i])
    return np.array(kept, np.int64)


def check_reference(head: np.ndarray, thresholds: Any) -> None:
    """A reference head whose detections can be compared: some score reaches ``--score-threshold`` (else nothing
    is judged and any target would pass) and none of those boxes has a negative width or height (not the
    decoder's centre-xywh layout: not even a model matches itself)."""
    from edgecnn.errors import UsageError

    boxes, scores, _ = decode(head, thresholds.decoder)
    kept = scores >= thresholds.score_threshold
    if not kept.any():
        raise UsageError(
            f"--score-threshold {thresholds.score_threshold} keeps none of the reference's detections (its best "
            f"score is {f'{scores.max():.4g}' if scores.size else 'none: the head has no anchors'}), so any target "
            "would pass: give a lower --score-threshold, or data in which the model finds objects"
        )
    inverted = int(np.count_nonzero((boxes[..., 2:] < boxes[..., :2]).any(-1) & kept))
    if inverted:
        raise UsageError(
            f"{inverted} of the reference's detections have a negative width or height, so its head is not "
            f"{thresholds.decoder}'s centre-x, y, width, height layout (decoded boxes, or raw logits?): give the "
            "--decoder of the head, or --task raw for this output"
        )


def detections(head: np.ndarray, thresholds: Any) -> list[dict[str, np.ndarray]]:
    """Per image: the boxes, scores and classes left after the score threshold, the ``MAX_CANDIDATES`` best and
    NMS."""
    boxes, scores, classes = decode(head, thresholds.decoder)
    result = []
    for b, s, c in zip(boxes, scores, classes, strict=True):
        keep = np.flatnonzero(s >= thresholds.score_threshold)
        keep = keep[np.argsort(-s[keep], kind="stable")[:MAX_CANDIDATES]]
        b, s, c = b[keep], s[keep], c[keep]
        kept = nms(b, s, c, thresholds.nms_iou)
        result.append({"boxes": b[kept], "scores": s[kept], "classes": c[kept]})
    return result


def match(reference: dict[str, np.ndarray], target: dict[str, np.ndarray]) -> list[tuple[int, int, float]]:
    """Greedy matches (reference index, target index, IoU): the target's detections by descending score, each to
    the unmatched reference detection of its class with the highest IoU ≥ 0.5 (the last of equal ones, as
    COCOeval)."""
    taken = np.zeros(len(reference["classes"]), bool)
    pairs = []
    for t in np.argsort(-target["scores"], kind="stable"):  # a row of IoUs at a time, as in nms
        overlaps = iou_matrix(target["boxes"][t : t + 1], reference["boxes"])[0]
        candidates = np.where(taken | (reference["classes"] != target["classes"][t]), 0.0, overlaps)
        r = len(candidates) - 1 - int(candidates[::-1].argmax()) if len(candidates) else -1
        if r >= 0 and candidates[r] >= MATCH_IOU:
            taken[r] = True
            pairs.append((r, int(t), float(candidates[r])))
    return pairs


def figures(reference: np.ndarray, target: np.ndarray, thresholds: Any) -> dict[str, Any]:
    """Detections of both, matched: precision, recall and F1 of the target against the reference, mean IoU of
    matched pairs, mean absolute score change, and the counts."""
    check_reference(reference, thresholds)
    refs, tgts = detections(reference, thresholds), detections(target, thresholds)
    matched = ious = score_change = 0.0
    for ref, tgt in zip(refs, tgts, strict=True):
        pairs = match(ref, tgt)
        matched += len(pairs)
        ious += sum(iou for _, _, iou in pairs)
        score_change += sum(abs(float(ref["scores"][r] - tgt["scores"][t])) for r, t, _ in pairs)
    n_ref, n_tgt = sum(len(r["scores"]) for r in refs), sum(len(t["scores"]) for t in tgts)
    precision = matched / n_tgt if n_tgt else 1.0 if not n_ref else 0.0
    recall = matched / n_ref if n_ref else 1.0 if not n_tgt else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "decoder": thresholds.decoder,
        "reference_detections": int(n_ref),
        "target_detections": int(n_tgt),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "matched_iou": ious / matched if matched else None,
        "score_change": score_change / matched if matched else None,
    }


def class_count(head: np.ndarray, decoder: str) -> int:
    """How many classes a head of ``decoder``'s layout scores."""
    return head.shape[1] - 4 if decoder == "yolo" else head.shape[-1] - (5 if decoder == "yolo-obj" else 4)


def truths(labels: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Per image, the label boxes (corner x0, y0, x1, y1) and classes of N×M×5 ground truth, padding rows (class
    −1) left out."""
    return [
        {"boxes": rows[rows[:, 4] >= 0, :4], "classes": rows[rows[:, 4] >= 0, 4].astype(np.int64)} for rows in labels
    ]


def average_precision(hits: np.ndarray, truth_count: int) -> float:
    """COCO's 101-point interpolated AP of detections ranked by score (``hits``: whether each is a true positive)
    against ``truth_count`` label boxes: the monotone precision envelope read at each of :data:`RECALL_POINTS`,
    0 past the highest recall reached."""
    if not len(hits):
        return 0.0
    true = np.cumsum(hits, dtype=np.float64)
    recall, precision = true / truth_count, true / np.arange(1, len(hits) + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    at = np.searchsorted(recall, RECALL_POINTS, side="left")
    return float(np.mean(np.where(at < len(hits), envelope[np.minimum(at, len(hits) - 1)], 0.0)))


def class_aps(found: list[dict[str, np.ndarray]], truth: list[dict[str, np.ndarray]]) -> dict[int, float]:
    """AP@0.5 of each class that has label boxes: ``found``'s detections (per image, by descending score) matched
    to ``truth``'s boxes (:func:`match`), then ranked by score over all images (ties in image order)."""
    scores, hits, classes = [], [], []
    for det, true in zip(found, truth, strict=True):
        hit = np.zeros(len(det["scores"]), bool)
        hit[[t for _, t, _ in match(true, det)]] = True
        scores.append(det["scores"])
        hits.append(hit)
        classes.append(det["classes"])
    order = np.argsort(-np.concatenate(scores), kind="stable")
    ranked_hits, ranked_classes = np.concatenate(hits)[order], np.concatenate(classes)[order]
    labelled = np.concatenate([t["classes"] for t in truth])
    return {
        int(cls): average_precision(ranked_hits[ranked_classes == cls], int(np.count_nonzero(labelled == cls)))
        for cls in np.unique(labelled)
    }


def map50(head: np.ndarray, truth: list[dict[str, np.ndarray]], thresholds: Any) -> float:
    """mAP@0.5 (COCO's AP50, see the module) of a head's detections against label boxes per image
    (:func:`truths`)."""
    return float(np.mean(list(class_aps(detections(head, thresholds), truth).values())))


def against_labels(reference: np.ndarray, target: np.ndarray, labels: np.ndarray, thresholds: Any) -> dict[str, Any]:
    """mAP@0.5 (COCO's AP50, see the module) of the reference's and the target's detections against label boxes
    (N×M×5: corners and class, −1 padding), and its drop in points."""
    from edgecnn.errors import UsageError

    truth = truths(labels)
    classes, top = class_count(reference, thresholds.decoder), int(labels[..., 4].max())
    if top < 0:
        raise UsageError(
            f"none of the {len(labels)} samples judged has a label box (every class is −1): give data with boxes"
        )
    if top >= classes:
        raise UsageError(
            f"the data's box classes go up to {top} but the {thresholds.decoder} head scores {classes} (0…"
            f"{classes - 1}): give classes of the model's"
        )
    maps = [map50(x, truth, thresholds) for x in (reference, target)]
    return {
        "reference_map50": maps[0],
        "target_map50": maps[1],
        "map50_drop_points": round(100 * (maps[0] - maps[1]), 4),
    }


def failures(figs: Mapping[str, Any], thresholds: Any) -> list[str]:
    """F1 against the reference's detections under ``--min-f1`` (and recall under ``--min-recall`` when given);
    with label boxes, an mAP@0.5 drop over ``--max-drop`` points."""
    missed = []
    if figs["f1"] < thresholds.min_f1:
        missed.append(
            f"detection F1 {short_of(figs['f1'], thresholds.min_f1)} (precision {figs['precision']:.4f}, recall "
            f"{figs['recall']:.4f} against {figs['reference_detections']} fp32 detections)"
        )
    if thresholds.min_recall is not None and figs["recall"] < thresholds.min_recall:
        missed.append(
            f"detection recall {short_of(figs['recall'], thresholds.min_recall)} "
            f"({figs['reference_detections']} fp32 detections)"
        )
    drop = figs.get("map50_drop_points")
    if drop is not None and drop > thresholds.max_accuracy_drop:
        missed.append(
            f"mAP@0.5 drop against the labels {drop:.2f} points > {thresholds.max_accuracy_drop} (fp32 "
            f"{figs['reference_map50']:.4f}, int8 {figs['target_map50']:.4f})"
        )
    return missed


OPTIONS = (
    "min_f1",
    "min_recall",
    "decoder",
    "score_threshold",
    "nms_iou",
)  # the Thresholds fields only this task reads: given for a model without one, an error
HEADLINE = "f1"  # the figure a report shows first and the repair optimises
SHOWN = (
    ("f1", "F1"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("matched_iou", "matched IoU"),
    ("map50_drop_points", "mAP@0.5 drop vs labels (points)"),
)  # (figure, label) a report shows
