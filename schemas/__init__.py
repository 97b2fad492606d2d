"""Document schemas: registry and the Spec contract the pipeline uses.

A schema module (one per document type) defines `Model` (pydantic), `VERSION`, `INSTRUCTION` and
`validate(data) -> list[Issue]` for its cross-field rules, and optionally `mask(data)`.
`get(name)` resolves, in this order: a built-in name, a name registered by another package under
the `docextract.schemas` entry-point group, a `path/to/schema.json`, a `path/to/module.py:Class`.

This package imports pydantic and the standard library only (no torch, no engine).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import UsageError

BUILTIN = ("aadhaar", "pan", "bank_statement", "invoice")
ENTRY_POINT_GROUP = "docextract.schemas"


@dataclass(frozen=True)
class Issue:
    """One validation finding. `severity` "error" makes the record invalid; "warning" does not."""

    loc: str
    type: str
    msg: str
    severity: str = "error"

    def as_dict(self) -> dict[str, str]:
        return {"loc": self.loc, "type": self.type, "msg": self.msg, "severity": self.severity}


@dataclass
class Validation:
    """Outcome of validating one extraction: the data (JSON-ready, None when it did not parse at
    all) and every finding."""

    data: dict[str, Any] | None
    issues: list[Issue] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.data is not None and not any(i.severity == "error" for i in self.issues)

    @property
    def errors(self) -> list[dict[str, str]]:
        return [i.as_dict() for i in self.issues]


@dataclass(frozen=True)
class Spec:
    """Everything the pipeline needs to know about one document type."""

    name: str
    version: str
    instruction: str
    json_schema: dict[str, Any]
    validator: Callable[[Any], Validation]
    masker: Callable[[dict[str, Any]], tuple[dict[str, Any], list[str]]] | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def validate(self, obj: Any) -> Validation:
        """`obj` is a JSON text or an already parsed value; never raises on bad input."""
        return self.validator(obj)

    def mask(self, data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """A masked copy of `data` and the paths of the fields that were masked."""
        if self.masker is None:
            return data, []
        return self.masker(data)


def names() -> list[str]:
    """Built-in schema names, then those registered by other packages."""
    return list(BUILTIN) + sorted(n for n in _entry_points() if n not in BUILTIN)


def get(name: str) -> Spec:
    """Resolve a schema name or path to its Spec; unknown names raise UsageError (exit 2)."""
    from . import _registry

    return _registry.resolve(name)


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


__all__ = ["BUILTIN", "Issue", "Spec", "Validation", "get", "names", "UsageError"]
