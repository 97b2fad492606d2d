"""A small drawing layer over a pymupdf page, fast enough for many-row statements.

Fonts come from pymupdf itself, so no font package is needed: Latin text uses the bundled
Helvetica metrics (Nimbus Sans), and the rupee sign and Devanagari use MuPDF's bundled
"Noto Serif Devanagari" (it has U+20B9). Devanagari needs shaping (conjuncts, pre-base matras),
which only pymupdf's HTML layout (`insert_htmlbox`, HarfBuzz) does, so Devanagari runs go there;
plain `TextWriter` text would come out as unshaped glyph sequences.

MuPDF writes those shaped glyphs with a ToUnicode map that has no entry for conjuncts and matra
variants (they come back as glyph numbers, `पूजा मɚ ţा`), and a pre-base matra is drawn left of
its consonant, which breaks the extracted line. So a Devanagari line gets a text layer as a
scanner's OCR layer is made: the shaped glyphs are marked `/ActualText ()` (no text of their
own), and the line's Unicode text is written word by word in invisible text (render mode 3),
each word stretched over the shaped word's box. `page.get_text()` then reads the line as
written, in logical order, with word boxes where the words are drawn.

Drawing is buffered: shapes, then text, then HTML boxes and images are written in `finish()`,
because every direct page call rewrites the content stream (quadratic for long pages).
"""

from __future__ import annotations

import html
import re
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
        """Plain text `s` (escaped here) laid out and shaped inside `box`; Devanagari text gets
        the invisible text layer described in the module docstring (one line only)."""
        rgb = "#%02x%02x%02x" % tuple(round(c * 255) for c in color)
        weight = "bold" if bold else "normal"
        body = html.escape(s).replace("\n", "<br>")
        markup = (f'<p style="font-family:sans-serif;font-size:{size}px;color:{rgb};'
                  f'font-weight:{weight};text-align:{align};margin:0;line-height:1.2">{body}</p>')
        self._late.append(("html", (pymupdf.Rect(*box), markup, s, size, bold)))

    def image(self, box: tuple[float, float, float, float], png: bytes) -> None:
        self._late.append(("image", (pymupdf.Rect(*box), png)))

    def finish(self) -> None:
        self._shape.commit()
        for color, writer in self._writers.items():
            writer.write_text(self.page, color=color)
        for kind, (box, payload, *text) in self._late:
            if kind == "html":
                self.page.insert_htmlbox(box, payload, scale_low=0)
                if has_devanagari(text[0]):
                    _text_layer(self.page, box, payload, *text)
            else:
                self.page.insert_image(box, stream=payload)


_FORM = re.compile(rb"\s*q /fzFrm[0-9]+ Do Q\s*")


def _text_layer(page: pymupdf.Page, box: pymupdf.Rect, markup: str, s: str, size: float,
                bold: bool) -> None:
    """Give the HTML box just drawn on `page` (its content stream is the page's last) no text
    of its own, and write `s` over it in invisible text, word by word on the shaped words."""
    doc = page.parent
    xref = page.get_contents()[-1]
    drawn = doc.xref_stream(xref)
    if "\n" in s or not _FORM.fullmatch(drawn):
        raise RuntimeError(f"unexpected HTML box content for a Devanagari line: {drawn[:60]!r}")
    doc.update_stream(xref, b"/Span <</ActualText ()>> BDC " + drawn.strip() + b" EMC")
    # Where the shaped glyphs are: the same box laid out alone on a scratch page of the same
    # size. Glyphs come in logical order, spaces included, so words split at the spaces.
    scratch = pymupdf.open()
    try:
        spot = scratch.new_page(width=page.rect.width, height=page.rect.height)
        spot.insert_htmlbox(box, markup, scale_low=0)
        words: list[list[tuple]] = [[]]
        for span in spot.get_texttrace():
            for ch in span["chars"]:
                if ch[0] == 0x20:
                    words.append([])
                else:
                    words[-1].append(ch)
    finally:
        scratch.close()
    words = [w for w in words if w]
    texts = s.split()
    if len(words) != len(texts):
        raise RuntimeError(f"{len(texts)} words in a Devanagari line, {len(words)} drawn")
    latin = "bold" if bold else "regular"
    for i, (text, glyphs) in enumerate(zip(texts, words)):
        x0, x1 = min(g[3][0] for g in glyphs), max(g[3][2] for g in glyphs)
        baseline = glyphs[0][2][1]
        writer = pymupdf.TextWriter(page.rect)
        x = x0
        for run, kind in _script_runs(text, latin):
            writer.append((x, baseline), run, font=font(kind), fontsize=size)
            x += _length(run, kind, size)
        stretch = (x1 - x0) / (x - x0) if x > x0 else 1.0
        if i + 1 < len(texts):
            # The space itself, so that extraction does not have to guess it from the gap.
            writer.append((x, baseline), " ", font=font(latin), fontsize=size)
        writer.write_text(page, render_mode=3,
                          morph=(pymupdf.Point(x0, baseline), pymupdf.Matrix(stretch, 1)))


def _script_runs(s: str, latin: str) -> list[tuple[str, str]]:
    """(text, font kind) runs: Devanagari (and the joiners) in the Devanagari font."""
    runs: list[tuple[str, str]] = []
    for ch in s:
        k = "deva" if has_devanagari(ch) or ch in "\u200c\u200d" or ch == RUPEE else latin
        if runs and runs[-1][1] == k:
            runs[-1] = (runs[-1][0] + ch, k)
        else:
            runs.append((ch, k))
    return runs


def pdf_bytes(doc: pymupdf.Document) -> bytes:
    """Deterministic, compact PDF bytes: fonts subset, no random file ID, no dates."""
    doc.subset_fonts()
    return doc.tobytes(garbage=4, deflate=True, no_new_id=True)
