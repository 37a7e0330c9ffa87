"""Drift judged by the task (edgecnn/analysis/task_*.py): figures on arrays whose answers are known by hand."""

import numpy as np
import pytest

from edgecnn.analysis.drift import Thresholds, failures, figures
from edgecnn.analysis.task_embedding import nearest
from edgecnn.analysis.task_segmentation import class_ious, masks
from edgecnn.analysis.tasks import TASK_MODULES, output_tasks, parse_tasks, task
from edgecnn.errors import UsageError


def _scores(mask: np.ndarray, classes: int) -> np.ndarray:
    """N×K×H×W scores whose arg-max is ``mask`` (N×H×W)."""
    return np.moveaxis(np.eye(classes, dtype=np.float32)[mask], -1, 1)


def test_segmentation_iou_of_known_masks():
    ref = np.zeros((1, 4, 4), np.int64)
    ref[0, :2, :2] = 1  # class 1: 4 pixels
    tgt = ref.copy()
    tgt[0, 0, 0] = 0  # one pixel of class 1 lost to class 0
    ious = class_ious(ref, tgt)
    assert ious == {0: 12 / 13, 1: 3 / 4}
    figs = figures({"out": _scores(ref, 3)}, {"out": _scores(tgt, 3)})
    seg = figs["outputs"]["out"]
    assert seg["task"] == "segmentation" and seg["task_origin"] == "inferred from output 'out' 1×3×4×4"
    assert seg["pixel_agreement"] == 15 / 16 and seg["miou"] == pytest.approx((12 / 13 + 3 / 4) / 2)
    assert seg["worst_class"] == 1 and seg["worst_class_iou"] == 0.75 and figs["top1_agreement"] is None
    assert failures(figs, Thresholds(min_miou=0.9)) == ["mIoU 0.8365 < 0.9 (worst class 1: IoU 0.7500)"]
    assert failures(figs, Thresholds(min_miou=0.8)) == []


def test_a_one_channel_map_is_thresholded():
    probabilities = np.array([[[[0.2, 0.7], [0.9, 0.4]]]], np.float32)
    assert masks(probabilities, 0.5).tolist() == [[[0, 1], [1, 0]]]
    assert masks(probabilities, 0.3).tolist() == [[[0, 1], [1, 1]]]


def test_embedding_rank1_agreement():
    base = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.8, 0.2]], np.float32)
    assert nearest(base).tolist() == [1, 0, 3, 2]
    moved = base.copy()
    moved[1] = [0.1, 0.95, 0.05]  # sample 1 moves next to sample 2, which (and 3) then picks it
    assert nearest(moved).tolist() == [1, 2, 1, 1]
    thresholds = Thresholds(tasks="embedding")
    figs = figures({"e": base}, {"e": moved}, thresholds=thresholds)["outputs"]["e"]
    assert figs["task"] == "embedding" and figs["task_origin"] == "given"
    assert figs["rank1_agreement"] == 0.25  # only sample 0 keeps its neighbour
    missed = failures({"top1_agreement": None, "cosine": 0.9, "outputs": {"e": figs}}, thresholds)
    assert missed[0] == "rank-1 retrieval agreement 0.2500 < 0.95" and missed[1].endswith("< 0.99")


def test_classification_keeps_its_figures():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]], np.float32)
    flipped = logits[:, ::-1].copy()
    figs = figures(logits, flipped, labels=np.array([0, 2]))
    assert figs["top1_agreement"] == 0.0 and figs["accuracy_drop_points"] == 100.0
    assert figs["outputs"]["logits"]["task"] == "classification"
    assert failures(figs, Thresholds()) == ["top-1 agreement 0.0000 < 0.99", "accuracy drop 100.00 points > 1.0"]


def test_each_output_is_judged_and_named():
    ref = {"scores": np.ones((2, 3), np.float32), "boxes": np.arange(16, dtype=np.float32).reshape(2, 2, 4)}
    tgt = {"scores": ref["scores"], "boxes": -ref["boxes"]}
    figs = figures(ref, tgt)
    assert {n: o["task"] for n, o in figs["outputs"].items()} == {"scores": "raw", "boxes": "raw"}
    assert figs["outputs"]["boxes"]["task_origin"] == "default: several outputs"
    assert failures(figs, Thresholds()) == ["output 'boxes': cosine -1.0000 < 0.99"]
    given = figures(ref, tgt, thresholds=Thresholds(tasks="0=classification"))
    assert given["outputs"]["scores"]["task"] == "classification" and given["top1_agreement"] is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("segmentaton", "unknown task 'segmentaton'; did you mean 'segmentation'"),
        ("out=segmentation,raw", "give OUTPUT=TASK for each"),
        ("out=raw,out=raw", "names output 'out' twice"),
    ],
)
def test_bad_task_specs_are_one_line(spec, message):
    with pytest.raises(UsageError, match=message):
        Thresholds(tasks=spec)


def test_task_inference_and_choice():
    assert parse_tasks(None) == {} and parse_tasks("raw") == {"*": "raw"}
    assert output_tasks({"y": (1, 10)}, {})["y"]["task"] == "classification"
    assert output_tasks({"y": (1, 64)}, {"*": "embedding"})["y"] == {"task": "embedding", "origin": "given"}
    assert output_tasks({"y": (1, 1, 1, 1)}, {})["y"]["task"] == "raw"
    with pytest.raises(UsageError, match=r"names output 'z', but the outputs are y \(or 0…0\)"):
        output_tasks({"y": (1, 10)}, {"z": "raw"})


def test_every_task_module_declares_its_figures():
    for name in TASK_MODULES:
        declared = task(name)
        assert declared.headline in dict(declared.shown) or declared.headline == "cosine", name


def _yolo_head(detections: list[tuple[float, float, float, float, int, float]], anchors: int, classes: int):
    """A 1×(4+C)×A head whose first anchors hold ``detections`` (cx, cy, w, h, class, score); the rest score 0."""
    head = np.zeros((1, 4 + classes, anchors), np.float32)
    for a, (cx, cy, w, h, cls, score) in enumerate(detections):
        head[0, :4, a] = cx, cy, w, h
        head[0, 4 + cls, a] = score
    return head


def test_detection_decodes_suppresses_and_matches():
    from edgecnn.analysis.task_detection import detections

    fp32 = _yolo_head(
        [(10, 10, 8, 8, 0, 0.9), (11, 10, 8, 8, 0, 0.8), (40, 40, 10, 10, 1, 0.7), (70, 20, 6, 6, 2, 0.6)], 8, 3
    )
    kept = detections(fp32, Thresholds())[0]  # the 0.8 box overlaps the 0.9 one of its class: suppressed
    assert kept["scores"].tolist() == pytest.approx([0.9, 0.7, 0.6]) and kept["classes"].tolist() == [0, 1, 2]
    assert kept["boxes"][0].tolist() == [6, 6, 14, 14]
    int8 = _yolo_head(
        [(10, 11, 8, 8, 0, 0.85), (40, 40, 10, 10, 2, 0.7), (70, 20, 6, 6, 2, 0.1), (90, 90, 4, 4, 1, 0.5)], 8, 3
    )
    # int8: the first box moved by 1 px (IoU 0.78, matched); the second changed class (no match); the third fell
    # under the score threshold (missed); one box is new (a false positive).
    figs = figures({"head": fp32}, {"head": int8}, thresholds=Thresholds(tasks="detection"))["outputs"]["head"]
    assert figs["reference_detections"] == 3 and figs["target_detections"] == 3
    assert figs["precision"] == pytest.approx(1 / 3) and figs["recall"] == pytest.approx(1 / 3)
    assert figs["f1"] == pytest.approx(1 / 3) and figs["matched_iou"] == pytest.approx(56 / 72)
    assert figs["score_change"] == pytest.approx(0.05)
    missed = failures({"top1_agreement": None, "cosine": 1.0, "outputs": {"head": figs}}, Thresholds())
    assert missed == ["detection F1 0.3333 < 0.9 (precision 0.3333, recall 0.3333 against 3 fp32 detections)"]
    recall = failures({"top1_agreement": None, "cosine": 1.0, "outputs": {"head": figs}}, Thresholds(min_f1=0.3))
    assert recall == []  # --min-recall is not checked unless given
    recall = Thresholds(min_f1=0.3, min_recall=0.5)
    assert failures({"top1_agreement": None, "cosine": 1.0, "outputs": {"head": figs}}, recall) == [
        "detection recall 0.3333 < 0.5 (3 fp32 detections)"
    ]


def test_yolo_obj_layout_multiplies_objectness():
    from edgecnn.analysis.task_detection import decode

    head = np.array([[[10, 10, 4, 4, 0.5, 0.2, 0.8]]], np.float32)  # 1 × 1 anchor × (5 + 2 classes)
    boxes, scores, classes = decode(head, "yolo-obj")
    assert (
        boxes.tolist() == [[[8, 8, 12, 12]]] and scores.tolist() == [[pytest.approx(0.4)]] and classes.tolist() == [[1]]
    )
    with pytest.raises(UsageError, match="the yolo decoder reads N×\\(4\\+C\\)×A heads, not 1×1×4"):
        decode(head[:, :, :4], "yolo")
    with pytest.raises(UsageError, match="the yolo decoder reads N×\\(4\\+C\\)×A heads, not 4:"):
        decode(np.zeros(4, np.float32), "yolo")  # one number per image: a one-line error, not an IndexError


def test_a_head_of_thousands_of_anchors_all_over_the_threshold_is_quick():
    """Random weights pass every anchor: NMS takes the 1000 best, one row of IoUs at a time (not 8400²)."""
    from edgecnn.analysis.task_detection import MAX_CANDIDATES, detections

    rng = np.random.default_rng(0)
    anchors = 8400
    cells = np.arange(anchors)
    centres = np.stack([cells % 100, cells // 100])[None] * 10.0  # 4×4 boxes 10 px apart: none overlap
    head = np.concatenate([centres, np.full((1, 2, anchors), 4.0), rng.uniform(0.3, 1, (1, 3, anchors))], 1)
    kept = detections(head, Thresholds())[0]
    assert len(kept["scores"]) == MAX_CANDIDATES and kept["scores"].min() >= np.sort(head[0, 4:].max(0))[-1000]


def test_segmentation_against_label_masks():
    truth = np.zeros((1, 4, 4), np.int64)
    truth[0, :2, :2] = 1
    fp32, int8 = truth.copy(), truth.copy()
    int8[0, 0, 0] = 0
    figs = figures({"out": _scores(fp32, 2)}, {"out": _scores(int8, 2)}, labels=truth)["outputs"]["out"]
    assert figs["reference_miou"] == 1.0 and figs["target_miou"] == pytest.approx((12 / 13 + 3 / 4) / 2)
    assert figs["miou_drop_points"] == pytest.approx(100 * (1 - (12 / 13 + 3 / 4) / 2), abs=1e-3)
    assert failures({"top1_agreement": None, "cosine": 1.0, "outputs": {"out": figs}}, Thresholds(min_miou=0.5)) == [
        "mIoU drop against the labels 16.35 points > 1.0"
    ]
    half = figures({"out": _scores(fp32[:, ::2, ::2], 2)}, {"out": _scores(fp32[:, ::2, ::2], 2)}, labels=truth)
    assert half["outputs"]["out"]["reference_miou"] == 1.0  # masks sampled at the output's size
    with pytest.raises(UsageError, match="masks hold classes 0…3 but the output has 2"):
        figures({"out": _scores(fp32, 2)}, {"out": _scores(fp32, 2)}, labels=truth * 3)
    with pytest.raises(UsageError, match="no output is judged as segmentation"):
        figures({"y": np.ones((1, 3), np.float32)}, {"y": np.ones((1, 3), np.float32)}, labels=truth)


def test_masks_in_an_npz_are_per_pixel_labels(tmp_path):
    from edgecnn.config.recipes import recipe_for_family
    from edgecnn.data.calibration import load_calibration

    images = np.zeros((4, 1, 8, 8), np.float32)
    np.savez(tmp_path / "m.npz", images=images, masks=np.ones((4, 8, 8), np.int64))
    calib, _ = load_calibration(str(tmp_path / "m.npz"), (1, 8, 8), recipe_for_family(None), 4, 0)
    assert calib.labels.shape == (4, 8, 8)
    np.savez(tmp_path / "bad.npz", images=images, masks=np.ones((4, 4, 4), np.int64))
    with pytest.raises(UsageError, match="masks must be N×8×8, with images of that size"):
        load_calibration(str(tmp_path / "bad.npz"), (1, 8, 8), recipe_for_family(None), 4, 0)
    np.savez(tmp_path / "both.npz", images=images, masks=np.ones((4, 8, 8), np.int64), labels=np.zeros(4, np.int64))
    with pytest.raises(UsageError, match="has both 'labels' and 'masks'"):
        load_calibration(str(tmp_path / "both.npz"), (1, 8, 8), recipe_for_family(None), 4, 0)


def test_boxes_and_scores_outputs_are_judged_as_one_detection_head():
    boxes = np.array([[[6, 6, 14, 14], [30, 30, 40, 40], [0, 0, 2, 2]]], np.float32)  # 1 × 3 anchors × 4
    scores = np.array([[[0.9, 0.0], [0.0, 0.8], [0.1, 0.1]]], np.float32)  # 1 × 3 anchors × 2 classes
    moved = boxes.copy()
    moved[0, 1] += 9  # the second box moves off its place: IoU < 0.5
    thresholds = Thresholds(tasks="boxes=detection,scores=detection", decoder="boxes-scores")
    figs = figures({"boxes": boxes, "scores": scores}, {"boxes": moved, "scores": scores}, thresholds=thresholds)
    head = figs["outputs"]["boxes+scores"]
    assert list(figs["outputs"]) == ["boxes+scores"] and head["task"] == "detection"
    assert head["reference_detections"] == 2 and head["recall"] == 0.5 and head["precision"] == 0.5
    with pytest.raises(UsageError, match="the boxes-scores decoder reads two detection outputs"):
        figures({"boxes": boxes}, {"boxes": boxes}, thresholds=Thresholds(tasks="detection", decoder="boxes-scores"))


def test_nms_and_matching_hold_one_row_of_ious_at_a_time():
    """A head of many anchors at --score-threshold 0: 4000 boxes would need 256 MB of pairwise IoU corners at once
    (a 12000-anchor head ran out of memory: exit 70)."""
    import tracemalloc

    from edgecnn.analysis.task_detection import match, nms

    rng = np.random.default_rng(0)
    corner = rng.random((4000, 2))
    boxes = np.concatenate([corner, corner + rng.random((4000, 2))], axis=1)
    scores, classes = rng.random(4000), np.zeros(4000, np.int64)
    tracemalloc.start()
    kept = nms(boxes, scores, classes, 1.0)  # nothing suppressed: every row of IoUs is computed
    pairs = match(
        {"boxes": boxes, "scores": scores, "classes": classes}, {"boxes": boxes, "scores": scores, "classes": classes}
    )
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(kept) == 4000 and len(pairs) == 4000
    assert peak < 20e6


def test_the_note_on_the_other_int8_computation_compares_the_task_figure():
    """exact QDQ and host kernels disagreeing on a segmentation net's mIoU is noted, like top-1 for a classifier."""
    from edgecnn.analysis.drift import verdict

    rng = np.random.default_rng(0)
    reference = {"out": rng.normal(size=(4, 3, 8, 8)).astype(np.float32)}
    flipped = {"out": reference["out"].copy()}
    flipped["out"][:, :, :4] = flipped["out"][:, ::-1, :4]  # half of each mask changes class
    thresholds = Thresholds(tasks="segmentation")
    computations = {
        "exact_qdq": figures(reference, reference, None, (), thresholds),
        "host_kernels": figures(reference, flipped, None, (), thresholds),
    }
    (note,) = verdict(computations, "exact_qdq", thresholds)["notes"]
    assert note.startswith("host kernels task figure 0.") and "exact qdq 1.0000" in note, note
    assert not verdict({"exact_qdq": computations["exact_qdq"]}, "exact_qdq", thresholds)["notes"]


# --- detection against label boxes: mAP@0.5, COCO's AP50 ----------------------------------------------------------


def _coco_aps(found: list[dict], truth: list[dict], classes: int) -> dict[int, float]:
    """Per-class AP50 by pycocotools' COCOeval (IoU 0.5 only, one area range, no cap on detections per image): the
    maintained implementation task_detection follows."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(box: np.ndarray) -> list[float]:
        return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]

    annotations = [
        {"image_id": i + 1, "category_id": int(c) + 1, "bbox": xywh(b), "iscrowd": 0}
        for i, t in enumerate(truth)
        for b, c in zip(t["boxes"], t["classes"], strict=True)
    ]
    for number, annotation in enumerate(annotations, 1):  # COCO ids start at 1 (0 reads as unmatched)
        annotation.update(id=number, area=annotation["bbox"][2] * annotation["bbox"][3])
    results = [
        {"image_id": i + 1, "category_id": int(c) + 1, "bbox": xywh(b), "score": float(s)}
        for i, d in enumerate(found)
        for b, s, c in zip(d["boxes"], d["scores"], d["classes"], strict=True)
    ]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco = COCO()
        coco.dataset = {
            "images": [{"id": i + 1} for i in range(len(truth))],
            "annotations": annotations,
            "categories": [{"id": c + 1} for c in range(classes)],
        }
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluation.params.iouThrs, evaluation.params.maxDets = np.array([0.5]), [10_000]
        evaluation.params.areaRng, evaluation.params.areaRngLbl = [[0, 1e10]], ["all"]
        evaluation.evaluate()
        evaluation.accumulate()
    precision = evaluation.eval["precision"][0, :, :, 0, 0]  # recall points × classes, −1 for a class without truth
    return {k: float(precision[:, k].mean()) for k in range(classes) if precision[0, k] > -1}


def _objects(rows: list[tuple], scored: bool) -> dict[str, np.ndarray]:
    """Detections (x0, y0, x1, y1, class, score) or label boxes (x0, y0, x1, y1, class) of one image."""
    rows = np.array(rows, np.float64).reshape(-1, 6 if scored else 5)
    found = {"boxes": rows[:, :4], "classes": rows[:, 4].astype(np.int64)}
    return {**found, "scores": rows[:, 5]} if scored else found


def test_average_precision_of_known_rankings():
    """COCO's 101-point AP: the precision envelope read at recall 0, 0.01, …, 1, and 0 past the last recall."""
    from edgecnn.analysis.task_detection import average_precision

    hits = np.array
    assert average_precision(hits([], bool), 3) == 0.0  # no detections
    assert average_precision(hits([True, True]), 2) == 1.0
    assert average_precision(hits([True]), 2) == pytest.approx(51 / 101)  # recall 0.5 at most: 51 of 101 points
    assert average_precision(hits([True, False, True]), 2) == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert average_precision(hits([False, True]), 1) == pytest.approx(0.5)  # the envelope lifts recall 0 too


def test_class_aps_of_duplicates_misses_ties_and_classes_without_truth():
    from edgecnn.analysis.task_detection import class_aps

    truth = [
        _objects([(0, 0, 10, 10, 0), (20, 20, 30, 30, 1)], False),
        _objects([(0, 0, 10, 10, 0)], False),  # never detected: a miss
        _objects([], False),
    ]
    found = [
        _objects([(0, 0, 10, 10, 0, 0.9), (1, 0, 11, 10, 0, 0.8), (50, 50, 60, 60, 2, 0.7)], True),  # a duplicate;
        _objects([], True),  # class 2 has no label box: no AP of its own
        _objects([(20, 20, 30, 30, 1, 0.6)], True),  # class 1 in the wrong image: a false positive
    ]
    aps = class_aps(found, truth)
    assert aps == {0: pytest.approx(51 / 101), 1: 0.0} and aps == pytest.approx(_coco_aps(found, truth, 3))
    # Equal scores rank in image order (COCO's stable sort): the false positive first, then the hit; and reversed.
    tie = [_objects([(0, 0, 10, 10, 0, 0.5)], True), _objects([(0, 0, 10, 10, 0, 0.5)], True)]
    truth = [_objects([], False), _objects([(0, 0, 10, 10, 0)], False)]
    assert class_aps(tie, truth) == {0: pytest.approx(0.5)} == _coco_aps(tie, truth, 1)
    assert class_aps(tie, truth[::-1]) == {0: 1.0} and _coco_aps(tie, truth[::-1], 1) == {0: pytest.approx(1.0)}
    # A detection at equal IoU with two label boxes takes the later one (COCOeval's rule), leaving the first to a
    # detection that overlaps only it.
    truth = [_objects([(0, 0, 10, 10, 0), (2, 0, 12, 10, 0)], False)]
    found = [_objects([(1, 0, 11, 10, 0, 0.9), (-2, 0, 8, 10, 0, 0.8)], True)]  # IoU 9/11 with both; 2/3, 3/7
    assert class_aps(found, truth) == {0: 1.0} and _coco_aps(found, truth, 1) == {0: pytest.approx(1.0)}


@pytest.mark.parametrize("seed", range(6))
def test_map50_is_pycocotools_ap50_on_random_scenes(seed):
    """Scenes of jittered, duplicated, re-classed, missed and invented boxes, scores on a coarse grid (ties):
    every class's AP equals COCOeval's AP50."""
    from edgecnn.analysis.task_detection import class_aps

    rng = np.random.default_rng(seed)
    classes, truth, found = 4, [], []
    for _ in range(15):
        count = int(rng.integers(0, 5))
        corner = rng.uniform(0, 80, (count, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(6, 30, (count, 2))], 1)
        labels = rng.integers(0, classes - 1, count)  # the last class is only ever a false positive
        truth.append({"boxes": boxes, "classes": labels})
        copies = rng.integers(0, 3, count)  # 0: missed, 2: a duplicate
        kept = np.repeat(np.arange(count), copies)
        moved = boxes[kept] + rng.uniform(-4, 4, (len(kept), 4))
        flipped = np.where(rng.random(len(kept)) < 0.1, classes - 1, labels[kept])
        extra = int(rng.integers(0, 3))
        corner = rng.uniform(0, 80, (extra, 2))
        invented = np.concatenate([corner, corner + rng.uniform(6, 30, (extra, 2))], 1)
        found.append(
            {
                "boxes": np.concatenate([moved, invented]).reshape(-1, 4),
                "classes": np.concatenate([flipped, rng.integers(0, classes, extra)]).astype(np.int64),
                "scores": np.round(rng.uniform(0.3, 1, len(kept) + extra), 1),
            }
        )
    ours = class_aps(found, truth)
    assert ours == pytest.approx(_coco_aps(found, truth, classes), abs=1e-12) and len(ours) >= 2


def test_detection_against_label_boxes():
    """Both models' mAP@0.5 against the labels and the drop, judged by --max-drop, for each decoder."""
    truth = np.array([[[6, 6, 14, 14, 0], [35, 35, 45, 45, 1], [0, 0, 0, 0, -1]]], np.float64)  # 1 × 3 rows × 5
    fp32 = _yolo_head([(10, 10, 8, 8, 0, 0.9), (40, 40, 10, 10, 1, 0.8)], 4, 2)
    int8 = _yolo_head([(10, 10, 8, 8, 0, 0.9), (46, 40, 10, 10, 1, 0.8)], 4, 2)  # the second box 6 px off
    thresholds = Thresholds(tasks="detection")
    figs = figures({"head": fp32}, {"head": int8}, truth, thresholds=thresholds)["outputs"]["head"]
    assert figs["reference_map50"] == 1.0 and figs["target_map50"] == 0.5 and figs["map50_drop_points"] == 50.0
    missed = failures({"top1_agreement": None, "cosine": 1.0, "outputs": {"head": figs}}, Thresholds(min_f1=0))
    assert missed == ["mAP@0.5 drop against the labels 50.00 points > 1.0 (fp32 1.0000, int8 0.5000)"]
    assert task("detection").shown[-1] == ("map50_drop_points", "mAP@0.5 drop vs labels (points)")
    # yolo-obj (N × A × (5+C)) and boxes-scores (N × A × 4 corners + N × A × C) read the same detections.
    obj = np.concatenate([fp32[:, :4], np.ones_like(fp32[:, :1]), fp32[:, 4:]], 1).transpose(0, 2, 1)
    same = figures({"h": obj}, {"h": obj}, truth, thresholds=Thresholds(tasks="detection", decoder="yolo-obj"))
    assert same["outputs"]["h"]["reference_map50"] == 1.0 and same["outputs"]["h"]["map50_drop_points"] == 0.0
    corners = np.array([[[6, 6, 14, 14], [35, 35, 45, 45], [0, 0, 1, 1], [0, 0, 1, 1]]], np.float32)
    scores = fp32[:, 4:].transpose(0, 2, 1)
    pair = {"boxes": corners, "scores": scores}
    split = Thresholds(tasks="boxes=detection,scores=detection", decoder="boxes-scores")
    assert figures(pair, pair, truth, thresholds=split)["outputs"]["boxes+scores"]["reference_map50"] == 1.0
    with pytest.raises(UsageError, match="box classes go up to 2 but the yolo head scores 2 \\(0…1\\)"):
        figures({"head": fp32}, {"head": fp32}, truth + np.array([0, 0, 0, 0, 1]), thresholds=thresholds)
    with pytest.raises(UsageError, match="the data's boxes label objects, but no output is judged as detection"):
        figures({"head": fp32}, {"head": fp32}, truth)  # detection is never inferred
    with pytest.raises(UsageError, match="none of the 1 samples judged has a label box"):
        figures({"head": fp32}, {"head": fp32}, truth[:, 2:], thresholds=thresholds)
