"""pycocotools' COCO evaluation as the reference scripts use it (yolo_ref.py, rcnn_ref.py):
ground truth and detections as rows, bbox mAP@[.5:.95] and mAP@0.5 from COCOeval."""


def coco_eval(gt, detections):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    import contextlib
    import io as pyio

    truth = COCO()
    truth.dataset = gt
    with contextlib.redirect_stdout(pyio.StringIO()):
        truth.createIndex()
        if detections:
            result = truth.loadRes(detections)
        else:
            return 0.0, 0.0
        ev = COCOeval(truth, result, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return max(ev.stats[0], 0.0), max(ev.stats[1], 0.0)


def ground_truth(images, classes, boxes):
    """boxes: (image, class, x1, y1, x2, y2) rows."""
    anns = []
    for image, cls, x1, y1, x2, y2 in boxes:
        w, h = x2 - x1, y2 - y1
        anns.append({"id": len(anns) + 1, "image_id": int(image), "category_id": int(cls),
                     "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": 0})
    return {"images": [{"id": i} for i in images],
            "categories": [{"id": c} for c in range(classes)], "annotations": anns}


def detections_of(rows):
    return [{"image_id": int(r[0]), "category_id": int(r[1]), "score": r[2],
             "bbox": [r[3], r[4], r[5] - r[3], r[6] - r[4]]} for r in rows]


def compare_with_gemel(rows, images, gemel_path, gt):
    """The reference's detections (rows) against the ones `gemel eval --detections` wrote for
    the same images (a COCO results file): detections per image, the images whose counts
    differ, and pycocotools' mAP@0.5 of gemel's own file (it must read it as it is)."""
    import json
    from collections import Counter

    with open(gemel_path) as f:
        theirs = json.load(f)
    ours = Counter(int(r[0]) for r in rows)
    gemel = Counter(int(d["image_id"]) for d in theirs)
    differ = [[i, ours[i], gemel[i]] for i in images if ours[i] != gemel[i]]
    unknown = sorted(set(gemel) - set(images))
    return {"gemel_detections": len(theirs), "count_differs": len(differ) + len(unknown),
            "first_differing": differ[:5], "unknown_images": unknown[:5],
            "gemel_file_map50": coco_eval(gt, theirs)[1]}
