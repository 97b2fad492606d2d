"""pyproject lists every package folder (find cannot follow the package-dir mapping), and no
top-level `kernels`/`schemas`/`samples` module is importable."""

import importlib.util
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAPPING = {"docextract": "docextract", "docextract.kernels": "kernels",
           "docextract.schemas": "schemas", "docextract.samples": "samples"}


def test_every_package_folder_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for pkg, folder in MAPPING.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([pkg, *rel.parts]) if rel.parts else pkg)
    assert found == listed


def test_no_top_level_kernels_or_schemas_module():
    for name in ("kernels", "schemas", "samples"):
        assert importlib.util.find_spec(name) is None, name
