"""A small drawing layer over a pymupdf page, fast enough for many-row statements.

Fonts come from pymupdf itself, so no font package is needed: Latin text uses the bundled
Helvetica metrics (Nimbus Sans), and the rupee sign and Devanagari use MuPDF's bundled
"Noto Serif Devanagari" (it has U+20B9). Devanagari needs shaping (conjuncts, pre-base matras),
which only pymupdf's HTML layout (`insert_htmlbox`, HarfBuzz) does, so Devanagari runs go there;
plain `TextWriter` text would come out as unshaped glyph sequences.

Drawing is buffered: shapes, then text, then HTML boxes and images are written in `finish()`,
because every direct page call rewrites the content stream (quadratic for long pages).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import pymupdf

Color = tuple[float, float, float]
BLACK: Color = (0.0, 0.0, 0.0)
GREY: Color = (0.45, 0.45, 0.45)
LIGHT: Color = (0.88, 0.88, 0.88)
WHITE: Color = (1.0, 1.0, 1.0)

RUPEE = "\u20b9"

_FONTS: dict[str, pymupdf.Font] = {}


def font(kind: str) -> pymupdf.Font:
    """"regular", "bold", "mono" (Latin) or "deva" (Devanagari and the rupee sign)."""
    if kind not in _FONTS:
        if kind == "deva":
            _FONTS[kind] = pymupdf.Font(script=pymupdf.UCDN_SCRIPT_DEVANAGARI)
        else:
            _FONTS[kind] = pymupdf.Font({"regular": "helv", "bold": "hebo", "mono": "cour"}[kind])
    return _FONTS[kind]


def has_devanagari(s: str) -> bool:
    return any("\u0900" <= ch <= "\u097f" for ch in s)


def _runs(s: str, kind: str) -> list[tuple[str, str]]:
    """Split `s` into (text, font kind) runs: the rupee sign is drawn in the Devanagari font."""
    if RUPEE not in s:
        return [(s, kind)] if s else []
    runs: list[tuple[str, str]] = []
    for ch in s:
        k = "deva" if ch == RUPEE else kind
        if runs and runs[-1][1] == k:
            runs[-1] = (runs[-1][0] + ch, k)
        else:
            runs.append((ch, k))
    return runs


_ADVANCE: dict[tuple[str, str], float] = {}


def _length(text: str, kind: str, size: float) -> float:
    """pymupdf's Font.text_length (the glyph advances summed in order, times the size) with
    each character's advance looked up once: the same float, without a font call per character."""
    total = 0
    for ch in text:
        advance = _ADVANCE.get((kind, ch))
        if advance is None:
            advance = _ADVANCE[(kind, ch)] = font(kind).text_length(ch, fontsize=1)
        total += advance
    return total * size


def text_width(s: str, size: float, bold: bool = False, mono: bool = False) -> float:
    kind = "mono" if mono else ("bold" if bold else "regular")
    return sum(_length(t, k, size) for t, k in _runs(s, kind))


@dataclass
class Canvas:
    """Buffered drawing on one page; call `finish()` once at the end."""

    page: pymupdf.Page
    _shape: Any = None
    _writers: dict[Color, pymupdf.TextWriter] = field(default_factory=dict)
    _late: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._shape = self.page.new_shape()

    @property
    def width(self) -> float:
        return self.page.rect.width

    @property
    def height(self) -> float:
        return self.page.rect.height

    def rect(self, r: tuple[float, float, float, float], fill: Color | None = None,
             stroke: Color | None = None, width: float = 0.5, radius: float | None = None) -> None:
        self._shape.draw_rect(pymupdf.Rect(*r), radius=radius)
        self._shape.finish(fill=fill, color=stroke, width=width if stroke else 0)

    def line(self, x0: float, y0: float, x1: float, y1: float, color: Color = BLACK,
             width: float = 0.5, dashes: str | None = None) -> None:
        self._shape.draw_line((x0, y0), (x1, y1))
        self._shape.finish(color=color, width=width, dashes=dashes)

    def oval(self, r: tuple[float, float, float, float], fill: Color | None = None,
             stroke: Color | None = None, width: float = 0.5) -> None:
        self._shape.draw_oval(pymupdf.Rect(*r))
        self._shape.finish(fill=fill, color=stroke, width=width if stroke else 0)

    def polygon(self, points: list[tuple[float, float]], fill: Color | None = None,
                stroke: Color | None = None, width: float = 0.5) -> None:
        self._shape.draw_polyline(points + points[:1])
        self._shape.finish(fill=fill, color=stroke, width=width if stroke else 0, closePath=True)

    def text(self, x: float, y: float, s: str, size: float = 9, bold: bool = False,
             color: Color = BLACK, align: str = "left", mono: bool = False) -> float:
        """Draw `s` with its baseline at y; x is the left, centre or right edge per `align`.
        Returns the width. Devanagari goes through the shaping HTML path."""
        if has_devanagari(s):
            return self._html_line(x, y, s, size, bold, color, align)
        w = text_width(s, size, bold, mono)
        x0 = x - w if align == "right" else x - w / 2 if align == "center" else x
        writer = self._writers.setdefault(color, pymupdf.TextWriter(self.page.rect))
        kind = "mono" if mono else ("bold" if bold else "regular")
        for t, k in _runs(s, kind):
            writer.append((x0, y), t, font=font(k), fontsize=size)
            x0 += _length(t, k, size)
        return w

    def _html_line(self, x: float, y: float, s: str, size: float, bold: bool, color: Color,
                   align: str) -> float:
        # Width estimate for placement only; the HTML engine shapes and measures for real.
        w = sum(font("deva" if has_devanagari(ch) or ch == RUPEE else "regular")
                .text_length(ch, fontsize=size) for ch in s) * 1.05
        x0 = x - w if align == "right" else x - w / 2 if align == "center" else x
        pad = 0.0 if align == "left" else 4.0 if align == "center" else 8.0
        box = (x0 - pad, y - size * 1.35, x0 + w + (8.0 - pad), y + size * 0.7)
        self.html(box, s, size=size, bold=bold, color=color, align=align)
        return w

    def html(self, box: tuple[float, float, float, float], s: str, size: float = 9,
             bold: bool = False, color: Color = BLACK, align: str = "left") -> None:
        """Plain text `s` (escaped here) laid out and shaped inside `box`."""
        rgb = "#%02x%02x%02x" % tuple(round(c * 255) for c in color)
        weight = "bold" if bold else "normal"
        body = html.escape(s).replace("\n", "<br>")
        markup = (f'<p style="font-family:sans-serif;font-size:{size}px;color:{rgb};'
                  f'font-weight:{weight};text-align:{align};margin:0;line-height:1.2">{body}</p>')
        self._late.append(("html", (pymupdf.Rect(*box), markup)))

    def image(self, box: tuple[float, float, float, float], png: bytes) -> None:
        self._late.append(("image", (pymupdf.Rect(*box), png)))

    def finish(self) -> None:
        self._shape.commit()
        for color, writer in self._writers.items():
            writer.write_text(self.page, color=color)
        for kind, (box, payload) in self._late:
            if kind == "html":
                self.page.insert_htmlbox(box, payload, scale_low=0)
            else:
                self.page.insert_image(box, stream=payload)


def pdf_bytes(doc: pymupdf.Document) -> bytes:
    """Deterministic, compact PDF bytes: fonts subset, no random file ID, no dates."""
    doc.subset_fonts()
    return doc.tobytes(garbage=4, deflate=True, no_new_id=True)
