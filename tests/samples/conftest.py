from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

import docextract.samples

DATA = Path(docextract.samples.__file__).parent / "data"


def _committed() -> list[dict]:
    return json.loads((DATA / "manifest.json").read_text(encoding="utf-8"))["documents"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise over the committed sample set: `valid_entry`, `broken_entry`, `pdf_entry`,
    `photo_entry` each take the manifest entries of that sort, with the document name as id."""
    selectors = {
        "valid_entry": lambda e: e["broken"] is None,
        "broken_entry": lambda e: e["broken"] is not None,
        "pdf_entry": lambda e: e["form"] == "pdf",
        "photo_entry": lambda e: e["form"] == "photo",
    }
    for name, keep in selectors.items():
        if name in metafunc.fixturenames:
            entries = [e for e in _committed() if keep(e)]
            metafunc.parametrize(name, entries, ids=[e["name"] for e in entries])


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def manifest() -> list[dict]:
    return _committed()


@pytest.fixture
def marker_page() -> Image.Image:
    """A white portrait page with a pure green square in its top-left quadrant."""
    page = Image.new("RGB", (300, 420), "white")
    page.paste((0, 200, 0), (30, 40, 120, 140))
    return page
