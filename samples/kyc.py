"""Aadhaar and PAN card fronts: facts drawn from a seeded RNG, then drawn on an ID-1 card page."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, timedelta

import pymupdf

from . import ids, pools
from .render import BLACK, GREY, WHITE, Canvas, Color

# ID-1 card, 85.60 x 53.98 mm, in points.
CARD = (242.65, 153.01)
SAFFRON: Color = (0.98, 0.55, 0.16)
GREEN: Color = (0.07, 0.53, 0.19)
NAVY: Color = (0.05, 0.13, 0.45)
RED: Color = (0.80, 0.07, 0.10)


@dataclass
class Person:
    first: tuple[str, str]
    middle: tuple[str, str] | None
    surname: tuple[str, str]
    gender: str
    dob: date
    father_first: str

    @property
    def name_en(self) -> str:
        parts = [self.first[0]] + ([self.middle[0]] if self.middle else []) + [self.surname[0]]
        return " ".join(parts)

    @property
    def name_hi(self) -> str:
        parts = [self.first[1]] + ([self.middle[1]] if self.middle else []) + [self.surname[1]]
        return " ".join(parts)

    @property
    def father_en(self) -> str:
        return f"{self.father_first} {self.surname[0]}"


def person(rng: random.Random) -> Person:
    gender = rng.choice(("MALE", "FEMALE"))
    first = rng.choice(pools.MALE_NAMES if gender == "MALE" else pools.FEMALE_NAMES)
    middle = rng.choice(pools.MIDDLE_NAMES) if gender == "MALE" and rng.random() < 0.35 else None
    dob = date(1950, 1, 1) + timedelta(days=rng.randint(0, 365 * 55))
    return Person(first, middle, rng.choice(pools.SURNAMES), gender, dob,
                  rng.choice(pools.MALE_NAMES)[0])


@dataclass
class AadhaarFacts:
    person: Person
    number: str
    vid: str | None
    issued: date


@dataclass
class PanFacts:
    person: Person
    number: str
    issued: date


def aadhaar_facts(rng: random.Random) -> AadhaarFacts:
    p = person(rng)
    vid = None
    if rng.random() < 0.4:
        body = str(rng.randint(2, 9)) + "".join(rng.choice("0123456789") for _ in range(14))
        vid = body + ids.verhoeff_check_digit(body)
    issued = date(2012, 1, 1) + timedelta(days=rng.randint(0, 365 * 12))
    return AadhaarFacts(p, ids.aadhaar(rng), vid, issued)


def pan_facts(rng: random.Random) -> PanFacts:
    p = person(rng)
    issued = date(2008, 1, 1) + timedelta(days=rng.randint(0, 365 * 16))
    return PanFacts(p, ids.pan(rng, "P", p.surname[0][0]), issued)


def _dmy(d: date) -> str:
    return d.strftime("%d/%m/%Y")


def _photo_box(c: Canvas, r: tuple[float, float, float, float], rng: random.Random) -> None:
    """A stand-in portrait: tinted backdrop, head and shoulders silhouette (no real face)."""
    x0, y0, x1, y1 = r
    w, h = x1 - x0, y1 - y0
    tint = rng.uniform(0.82, 0.92)
    c.rect(r, fill=(tint, tint, tint + 0.04), stroke=GREY, width=0.4)
    skin = rng.choice(((0.55, 0.40, 0.30), (0.45, 0.32, 0.24), (0.62, 0.47, 0.36)))
    body = rng.choice(((0.25, 0.28, 0.38), (0.55, 0.20, 0.22), (0.85, 0.85, 0.88)))
    c.polygon([(x0 + 0.08 * w, y1), (x0 + 0.2 * w, y0 + 0.72 * h), (x0 + 0.8 * w, y0 + 0.72 * h),
               (x0 + 0.92 * w, y1)], fill=body)
    c.rect((x0 + 0.42 * w, y0 + 0.55 * h, x0 + 0.58 * w, y0 + 0.75 * h), fill=skin)
    c.oval((x0 + 0.24 * w, y0 + 0.08 * h, x0 + 0.76 * w, y0 + 0.5 * h), fill=(0.1, 0.08, 0.07))
    c.oval((x0 + 0.28 * w, y0 + 0.16 * h, x0 + 0.72 * w, y0 + 0.62 * h), fill=skin)


def _wheel(c: Canvas, cx: float, cy: float, r: float, color: Color) -> None:
    """A generic spoked seal (deliberately not a state emblem)."""
    c.oval((cx - r, cy - r, cx + r, cy + r), stroke=color, width=0.6)
    c.oval((cx - r * 0.2, cy - r * 0.2, cx + r * 0.2, cy + r * 0.2), fill=color)
    for k in range(12):
        a = k * math.pi / 6
        c.line(cx, cy, cx + r * 0.92 * math.cos(a), cy + r * 0.92 * math.sin(a), color, 0.35)


def _guilloche(c: Canvas, rng: random.Random, color: Color, top: float, bottom: float) -> None:
    """Faint security-print waves across the card background."""
    w = c.width
    phase = rng.uniform(0, 6.3)
    for k in range(9):
        y = top + (bottom - top) * k / 8
        pts = [(x, y + 3 * math.sin(x / 9 + phase + k)) for x in range(0, int(w) + 6, 6)]
        for (xa, ya), (xb, yb) in zip(pts, pts[1:]):
            c.line(xa, ya, xb, yb, color, 0.25)


def _specimen(c: Canvas) -> None:
    c.text(c.width - 6, c.height - 3, "SYNTHETIC SPECIMEN", 3.6, color=(0.6, 0.6, 0.6),
           align="right")


def draw_aadhaar(facts: AadhaarFacts, rng: random.Random) -> pymupdf.Document:
    """One-page PDF of the card front."""
    doc = pymupdf.open()
    c = Canvas(doc.new_page(width=CARD[0], height=CARD[1]))
    w, h = CARD
    c.rect((0, 0, w, h), fill=WHITE)
    _guilloche(c, rng, (0.93, 0.93, 0.97), 40, 118)
    c.rect((0, 0, w, 9), fill=SAFFRON)
    c.rect((0, 30, w, 34), fill=GREEN)
    _wheel(c, 20, 19, 8.5, NAVY)
    c.text(w / 2, 17.5, "भारत सरकार", 8, color=BLACK, align="center")
    c.text(w / 2, 27, "GOVERNMENT OF INDIA", 6.8, bold=True, align="center")
    for k in range(10):
        a = k * math.pi / 9 + math.pi
        c.line(w - 22, 24, w - 22 + 10 * math.cos(a), 24 + 10 * math.sin(a), RED, 1.0)
    c.oval((w - 26, 20, w - 18, 28), fill=(0.98, 0.78, 0.1))

    _photo_box(c, (12, 42, 62, 106), rng)
    p = facts.person
    x = 72
    c.text(x, 52, p.name_hi, 7.5)
    c.text(x, 63, p.name_en, 7.5, bold=True)
    c.text(x, 74, f"जन्म तिथि/DOB: {_dmy(p.dob)}", 7)
    gender_hi = "पुरुष" if p.gender == "MALE" else "महिला"
    c.text(x, 85, f"{gender_hi}/ {p.gender}", 7)
    if facts.vid:
        v = facts.vid
        c.text(x, 96, f"VID : {v[:4]} {v[4:8]} {v[8:12]} {v[12:]}", 5.5, color=GREY)
    c.text(9, 113, f"Issue Date: {_dmy(facts.issued)}", 4.2, color=GREY)

    n = facts.number
    c.text(w / 2, 127, f"{n[:4]} {n[4:8]} {n[8:]}", 13, bold=True, align="center")
    c.line(10, 133, w - 10, 133, RED, 1.2)
    c.text(w / 2, 144, "मेरा आधार, मेरी पहचान", 8, color=RED, align="center")
    _specimen(c)
    c.finish()
    return doc


def _qr(c: Canvas, x0: float, y0: float, size: float, rng: random.Random) -> None:
    """A QR-like module pattern with finder squares (decorative, encodes nothing)."""
    n = 25
    m = size / n
    c.rect((x0, y0, x0 + size, y0 + size), fill=WHITE)
    for i in range(n):
        for j in range(n):
            if rng.random() < 0.5:
                c.rect((x0 + i * m, y0 + j * m, x0 + (i + 1) * m, y0 + (j + 1) * m), fill=BLACK)
    for fx, fy in ((0, 0), (n - 7, 0), (0, n - 7)):
        bx, by = x0 + fx * m, y0 + fy * m
        c.rect((bx, by, bx + 7 * m, by + 7 * m), fill=BLACK)
        c.rect((bx + m, by + m, bx + 6 * m, by + 6 * m), fill=WHITE)
        c.rect((bx + 2 * m, by + 2 * m, bx + 5 * m, by + 5 * m), fill=BLACK)


def _signature(c: Canvas, x: float, y: float, w: float, rng: random.Random) -> None:
    """A pen scribble made of short random strokes."""
    px, py = x, y
    for k in range(14):
        nx = x + w * (k + 1) / 14
        ny = y + rng.uniform(-5, 5)
        c.line(px, py, nx, ny, NAVY, 0.7)
        px, py = nx, ny


def draw_pan(facts: PanFacts, rng: random.Random) -> pymupdf.Document:
    doc = pymupdf.open()
    c = Canvas(doc.new_page(width=CARD[0], height=CARD[1]))
    w, h = CARD
    c.rect((0, 0, w, h), fill=(0.86, 0.93, 0.97))
    _guilloche(c, rng, (0.78, 0.87, 0.93), 36, 150)
    c.rect((0, 0, w, 32), fill=(0.80, 0.90, 0.96))
    c.text(8, 13, "आयकर विभाग", 7.5, color=NAVY)
    c.text(8, 23, "INCOME TAX DEPARTMENT", 6.6, bold=True, color=NAVY)
    c.text(w - 8, 13, "भारत सरकार", 7.5, color=NAVY, align="right")
    c.text(w - 8, 23, "GOVT. OF INDIA", 6.6, bold=True, color=NAVY, align="right")
    _wheel(c, w / 2, 16, 10, NAVY)

    c.text(w / 2 + 20, 43, "स्थायी लेखा संख्या कार्ड", 6, color=BLACK, align="center")
    c.text(w / 2 + 20, 51, "Permanent Account Number Card", 5.8, align="center")
    c.text(w / 2 + 20, 64, facts.number, 12, bold=True, align="center")
    _qr(c, 8, 38, 40, rng)

    p = facts.person
    x = 8
    c.text(x, 89, "नाम / Name", 5.2, color=GREY)
    c.text(x, 97, p.name_en.upper(), 7, bold=True)
    c.text(x, 108, "पिता का नाम / Father's Name", 5.2, color=GREY)
    c.text(x, 116, p.father_en.upper(), 7, bold=True)
    c.text(x, 127, "जन्म की तारीख / Date of Birth", 5.2, color=GREY)
    c.text(x, 135, _dmy(p.dob), 7, bold=True)

    _photo_box(c, (180, 72, 232, 128), rng)
    _signature(c, 150, 140, 44, rng)
    c.text(172, 149, "हस्ताक्षर / Signature", 4.6, color=GREY, align="center")
    c.text(w - 6, 36, _dmy(facts.issued), 4.2, color=GREY, align="right")
    _specimen(c)
    c.finish()
    return doc
