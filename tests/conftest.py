"""Shared test setup: CPU by default, Triton through its interpreter, the repository root kept
off sys.path, and a fake engine that stands in for the model."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# transformers probes `import kernels`; our kernels/ folder must not answer it.
sys.path[:] = [p for p in sys.path if Path(p or os.getcwd()).resolve() != ROOT]

# One intra-op thread: the test models are tiny, and OpenMP's spinning threads collapse (tens of
# times slower) when the 2 cores are shared with other processes. Subprocesses inherit this.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

# The engine's first-use self-check of the Triton ops (engine/selfcheck.py) writes a cache under
# the user's home: off by default here, tests/engine/test_selfcheck.py turns it on with its own file.
os.environ.setdefault("DOCEXTRACT_SELFCHECK", "0")

# Must be set before any module with @triton.jit is imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config, items):
    # the full compile sweep runs only when asked for: -m gpu_compile_full
    if "gpu_compile_full" not in (config.option.markexpr or ""):
        full = [item for item in items if "gpu_compile_full" in item.keywords]
        if full:
            config.hook.pytest_deselected(items=full)
            items[:] = [item for item in items if "gpu_compile_full" not in item.keywords]
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


class FakeEngine:
    """Answers every request with `answer(request)` (a JSON text); records what it was asked."""

    name = "fake-model"
    experts = "bf16"

    def __init__(self, answer, finish_reason: str = "stop"):
        self.answer = answer
        self.finish_reason = finish_reason
        self.requests = []

    def generate(self, requests):
        from docextract.engine.api import Completion

        out = []
        for r in requests:
            self.requests.append(r)
            text = self.answer(r) if callable(self.answer) else self.answer
            out.append(Completion(text=text, tokens=list(range(len(text) // 4 + 1)),
                                  finish_reason=self.finish_reason, prompt_tokens=10,
                                  timings={"prefill_s": 0.001, "decode_s": 0.002}))
        return out


@pytest.fixture
def fake_engine():
    return FakeEngine


def _receipt_spec():
    """A small schema with a domain rule and a masked field, independent of the built-ins."""
    import json

    from docextract.schemas import Issue, Spec, Validation

    schema = {"type": "object", "additionalProperties": False,
              "required": ["id_number", "items", "total"],
              "properties": {"id_number": {"type": "string", "pattern": "^[0-9]{12}$",
                                           "maxLength": 12},
                             "items": {"type": "array", "maxItems": 5,
                                       "items": {"type": "integer"}},
                             "total": {"type": "integer"}}}

    def validate(obj):
        if isinstance(obj, str):
            try:
                obj = json.loads(obj)
            except json.JSONDecodeError as exc:
                return Validation(None, [Issue("", "json", exc.msg)])
        if not isinstance(obj, dict) or set(obj) != set(schema["required"]):
            return Validation(None, [Issue("", "schema", "not a receipt object")])
        issues = []
        if sum(obj["items"]) != obj["total"]:
            issues.append(Issue("total", "total_mismatch", "total is not the sum of the items"))
        if len(obj["items"]) == 0:
            issues.append(Issue("items", "no_items", "no items", severity="warning"))
        return Validation(obj, issues)

    def mask(data):
        return {**data, "id_number": "XXXXXXXX" + data["id_number"][-4:]}, ["id_number"]

    return Spec(name="receipt", version="3", instruction="Read the receipt.", json_schema=schema,
                validator=validate, masker=mask)


@pytest.fixture
def receipt_spec(monkeypatch):
    """Makes `--schema receipt` resolve to the small test schema above."""
    from docextract import schemas

    spec = _receipt_spec()
    real_get = schemas.get
    monkeypatch.setattr(schemas, "get", lambda name: spec if name == "receipt" else real_get(name))
    return spec
