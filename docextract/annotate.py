"""Pictures for the reviewer: each page as PNG with a box per located field.

Boxes are coloured by the field's state: green fine, amber needs review, red a validation error
names it; each is labelled with the field path and its confidence. A value printed in parts (a
GST rate as its CGST and SGST halves) gets a box per part. Fields with no box on a page
(photos and scans, values not found) are listed in a panel under the page, with the same
colours. Masked identifiers are drawn blacked out, at every place their visible pattern is
printed on the page, so the picture is as safe to share as the record. A photo or scan has no
text layer to find them in: when the record masks a value, its pages are pixelated beyond
reading and the panel says why.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from PIL import Image, ImageDraw, ImageFont

from . import evidence as ev
from .errors import UsageError
from .fsutil import display_name

COLOURS = {"fine": (0, 150, 60), "review": (235, 140, 0), "error": (210, 0, 0)}
BLACK = (0, 0, 0)


def states(record: dict[str, Any]) -> dict[str, str]:
    """{loc: "review" | "error"} from the record's review list (other fields are fine)."""
    out = {}
    for item in record.get("review") or []:
        out[item["loc"]] = "error" if "validation_error" in item["reasons"] else "review"
    return out


def _state(path: str, marks: dict[str, str]) -> str:
    """A field's own state, or "error" when an error names the object it belongs to."""
    if path in marks:
        return marks[path]
    for loc, state in marks.items():
        if state == "error" and loc and path.startswith(loc) and path[len(loc):][:1] in (".", "["):
            return "error"
    return "fine"


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def _masked_boxes(record: dict[str, Any], page) -> list[tuple[float, float, float, float]]:
    """Every place on `page` where a masked value's pattern is printed, in points."""
    if not getattr(page, "words", None):
        return []
    data = record.get("data")
    text = ev.PageText(page.number, page.words)
    boxes = []
    for path in record.get("masked") or []:
        for leaf, value in ev.leaves(_at(data, path)):
            if isinstance(value, str) and value:
                boxes += [h.bbox for h in ev.candidates(value, text)]
        found = (record.get("evidence") or {}).get(path)
        if found and found.get("bbox") and found.get("page") == page.number:
            boxes.append(tuple(found["bbox"]))
    return boxes


def _at(data: Any, path: str) -> Any:
    import re

    node = data
    for part in re.findall(r"[^.\[\]]+", path):
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            return None
    return node


def page_picture(record: dict[str, Any], page, first: int = 1) -> Image.Image:
    """One page with its boxes, labels and the panel of fields without a box (fields of no
    particular page are listed under page `first`)."""
    image = page.image.convert("RGB")
    masked = bool(record.get("masked"))
    evidence = record.get("evidence") or {}
    confidence = record.get("confidence") or {}
    marks = states(record)
    width, height = image.size
    size_pt = getattr(page, "size_pt", None)
    scale = (width / size_pt[0], height / size_pt[1]) if size_pt else None
    notes: list[tuple[str, str]] = []
    if getattr(page, "words", None) is None and masked:
        small = image.resize((max(1, width // 24), max(1, height // 24)), Image.Resampling.BILINEAR)
        image = small.resize((width, height), Image.Resampling.NEAREST)
        notes.append(("review", "photo or scan: masked values cannot be located, so the page is "
                                "pixelated"))
    draw = ImageDraw.Draw(image)
    font = _font(max(11, width // 110))

    def px(box):
        x0, y0, x1, y1 = box
        return (x0 * scale[0], y0 * scale[1], x1 * scale[0], y1 * scale[1])

    if scale:
        for box in _masked_boxes(record, page):
            x0, y0, x1, y1 = px(box)
            pad = (y1 - y0) * 0.35
            draw.rectangle((x0 - 2, y0 - pad, x1 + 2, y1 + pad), fill=BLACK)
    for path, e in evidence.items():
        state = _state(path, marks)
        conf = confidence.get(path)
        label = path + (f" {conf:.2f}" if conf is not None else "")
        if e.get("bbox") and e.get("page") == page.number and scale:
            # A value printed in parts (a rate as its CGST and SGST halves): a box per part, not
            # their union, which would frame the columns between them; labelled on the first.
            parts = e.get("parts") or [e["bbox"]]
            pad = 2
            for part in parts:
                x0, y0, x1, y1 = px(part)
                draw.rectangle((x0 - pad, y0 - pad, x1 + pad, y1 + pad), outline=COLOURS[state],
                               width=2)
            x0, y0, x1, y1 = px(parts[0])
            if e.get("match"):
                label += f" ({e['match']})"
            tw = draw.textlength(label, font=font)
            th = font.size if hasattr(font, "size") else 11
            ty = max(0, y0 - pad - th - 2)
            draw.rectangle((x0 - pad, ty, x0 - pad + tw + 4, ty + th + 2), fill=COLOURS[state])
            draw.text((x0 - pad + 2, ty), label, fill=(255, 255, 255), font=font)
        elif not e.get("bbox") and (e.get("page") == page.number
                                    or (e.get("page") is None and page.number == first)):
            why = e.get("reason") or "no box"
            notes.append((state, f"{label}: {why}"))
    for item in record.get("review") or []:
        if item["loc"] not in evidence and "validation_error" in item["reasons"] and \
                page.number == first:
            notes.append(("error", f"{item['loc'] or '(document)'}: {', '.join(item['reasons'])}"))
    return _with_panel(image, notes, font)


def _with_panel(image: Image.Image, notes: list[tuple[str, str]], font) -> Image.Image:
    if not notes:
        return image
    th = (font.size if hasattr(font, "size") else 11) + 4
    panel = Image.new("RGB", (image.width, th * len(notes) + 8), (255, 255, 255))
    draw = ImageDraw.Draw(panel)
    for i, (state, text) in enumerate(notes):
        y = 4 + i * th
        draw.rectangle((4, y + 2, 4 + th - 6, y + th - 4), fill=COLOURS[state])
        draw.text((th + 4, y), text, fill=(0, 0, 0), font=font)
    out = Image.new("RGB", (image.width, image.height + panel.height), (255, 255, 255))
    out.paste(image, (0, 0))
    out.paste(panel, (0, image.height))
    return out


def write(record: dict[str, Any], pages: Sequence[Any], out_dir: str | os.PathLike) -> list[Path]:
    """page-001.png ... in `out_dir` (created), one per page; each written atomically."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{display_name(out)}: cannot create the output folder "
                         f"({exc.strerror or exc})") from None
    digits = max([3] + [len(str(p.number)) for p in pages])
    written = []
    for page in pages:
        path = out / f"page-{page.number:0{digits}d}.png"
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            page_picture(record, page, pages[0].number).save(tmp, "PNG")
            os.replace(tmp, path)
        except OSError as exc:
            raise UsageError(f"{display_name(path)}: cannot write ({exc.strerror or exc})") from None
        written.append(path)
    return written
