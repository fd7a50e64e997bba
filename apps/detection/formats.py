"""Box annotations of other tools, read into one shape: COCO JSON and Pascal VOC XML.

Pure parsing (no database): each reader returns ``AnnotatedImage``s (a file name, the size the
annotation declares, and ``(label name, [xmin, ymin, xmax, ymax])`` boxes in pixels) and the
annotations it could not read, each with the reason.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET  # noqa: S405  # nosec B405 - DTDs refused before parsing (parse_voc)
from dataclasses import dataclass, field

MSG_NOT_COCO = "Not a COCO detection file: it needs images, annotations and categories lists."
MSG_BAD_JSON = "Not valid JSON: {error}"
MSG_BAD_XML = "Not valid XML: {error}"
MSG_NOT_VOC = "Not a Pascal VOC annotation: no <annotation> with a <filename>."
MSG_UNKNOWN_IMAGE = "The annotation names image id {image_id}, which the file does not list."
MSG_UNKNOWN_CATEGORY = "The annotation names category id {category_id}, which the file does not list."
MSG_BAD_BBOX = "The box is not four finite numbers: {bbox!r}."
MSG_NO_NAME = "An <object> has no <name>."
MSG_DTD = "XML with a DOCTYPE (entities) is not accepted in annotations."


@dataclass
class AnnotatedImage:
    file_name: str
    width: int | None = None
    height: int | None = None
    boxes: list[tuple[str, list[float]]] = field(default_factory=list)


@dataclass
class Parsed:
    images: list[AnnotatedImage]
    skipped: list[dict]  # {"file", "reason"} (and "box", "label" for a skipped box)


def _finite(values) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def parse_coco(text: str | bytes, source: str = "annotations.json") -> Parsed:
    """A COCO detection file: ``bbox`` ``[x, y, width, height]`` becomes ``[x, y, x + w, y + h]``.

    Images without annotations are kept (they import as images with no boxes).
    """
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return Parsed([], [{"file": source, "reason": MSG_BAD_JSON.format(error=exc)}])
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations")
    ):
        return Parsed([], [{"file": source, "reason": MSG_NOT_COCO}])
    categories = {
        c.get("id"): str(c.get("name")) for c in data.get("categories") or [] if isinstance(c, dict)
    }
    images: dict = {}
    for entry in data["images"]:
        if isinstance(entry, dict) and entry.get("file_name"):
            width, height = entry.get("width"), entry.get("height")
            images[entry.get("id")] = AnnotatedImage(
                str(entry["file_name"]),
                int(width) if _finite([width]) else None,
                int(height) if _finite([height]) else None,
            )
    skipped = []
    for annotation in data["annotations"]:
        if not isinstance(annotation, dict):
            continue
        image = images.get(annotation.get("image_id"))
        if image is None:
            skipped.append(
                {"file": source, "reason": MSG_UNKNOWN_IMAGE.format(image_id=annotation.get("image_id"))}
            )
            continue
        name = categories.get(annotation.get("category_id"))
        bbox = annotation.get("bbox")
        if name is None:
            skipped.append(
                {
                    "file": image.file_name,
                    "reason": MSG_UNKNOWN_CATEGORY.format(category_id=annotation.get("category_id")),
                }
            )
            continue
        if not isinstance(bbox, list) or len(bbox) != 4 or not _finite(bbox):
            skipped.append({"file": image.file_name, "label": name, "reason": MSG_BAD_BBOX.format(bbox=bbox)})
            continue
        x, y, w, h = bbox
        image.boxes.append((name, [x, y, x + w, y + h]))
    return Parsed(list(images.values()), skipped)


def _number(node, tag: str):
    text = node.findtext(tag)
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def parse_voc(text: str | bytes, source: str = "annotation.xml") -> Parsed:
    """One Pascal VOC annotation. VOC's pixel indices are 1-based and inclusive, so
    ``<xmin>`` 1 .. ``<xmax>`` W covers the whole width: boxes become ``[xmin - 1, ymin - 1, xmax, ymax]``.

    An uploaded XML with a DOCTYPE is refused before parsing: without a DTD there are no entities
    to expand (no billion laughs) and none to resolve (no external files); VOC files have none.
    """
    raw = text.encode() if isinstance(text, str) else bytes(text)
    if b"<!doctype" in raw.lower():
        return Parsed([], [{"file": source, "reason": MSG_DTD}])
    try:
        root = ET.fromstring(raw)  # noqa: S314  # nosec B314 - no DOCTYPE, so no entities (above)
    except ET.ParseError as exc:
        return Parsed([], [{"file": source, "reason": MSG_BAD_XML.format(error=exc)}])
    file_name = (root.findtext("filename") or "").strip() if root.tag == "annotation" else ""
    if not file_name:
        return Parsed([], [{"file": source, "reason": MSG_NOT_VOC}])
    size = root.find("size")
    width = _number(size, "width") if size is not None else None
    height = _number(size, "height") if size is not None else None
    image = AnnotatedImage(file_name, int(width) if width else None, int(height) if height else None)
    skipped = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if not name:
            skipped.append({"file": file_name, "reason": MSG_NO_NAME})
            continue
        values = [_number(box, tag) if box is not None else None for tag in ("xmin", "ymin", "xmax", "ymax")]
        if any(v is None for v in values):
            skipped.append({"file": file_name, "label": name, "reason": MSG_BAD_BBOX.format(bbox=values)})
            continue
        xmin, ymin, xmax, ymax = values
        image.boxes.append((name, [max(0.0, xmin - 1), max(0.0, ymin - 1), xmax, ymax]))
    return Parsed([image], skipped)
