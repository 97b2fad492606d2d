"""Turning a `--schema` argument into a Spec.

Order (documented in the package docstring): `NAME[@VERSION]` built in, then registered under
the `docextract.schemas` entry-point group, then a `.json` file (a JSON Schema), then a `.py`
file: `path.py:ClassName` (a pydantic model) or `path.py` (a module like a built-in one).
"""

from __future__ import annotations

import copy
import decimal
import functools
import hashlib
import importlib
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from collections.abc import Callable

from pydantic import BaseModel, ValidationError

from ..errors import UsageError
from . import BUILTIN, CODES, Issue, Spec, Validation, _entry_points, _jsonschema, names

_ANNOTATION_KEYS = ("title", "default", "description", "examples")


def resolve(name: str) -> Spec:
    if not isinstance(name, str) or not name.strip():
        raise UsageError("empty schema name", hint=_known())
    base, _, version = name.partition("@") if not _looks_like_path(name) else (name, "", "")
    spec = _resolve(base)
    if version and version != spec.version:
        raise UsageError(f"schema {base!r} is at version {spec.version}, not {version}",
                         hint=f"use --schema {base} or {spec.ref}")
    return spec


def _looks_like_path(name: str) -> bool:
    return "/" in name or "\\" in name or name.endswith((".json", ".py")) or ".py:" in name


def _resolve(name: str) -> Spec:
    if name in BUILTIN:
        return builtin(name)
    if not _looks_like_path(name):
        eps = _entry_points()
        if name in eps:
            return _from_entry_point(name, eps[name])
        raise UsageError(f"unknown schema {name!r}", hint=_known())
    if name.endswith(".json"):
        return from_json_file(Path(name))
    path, cls = _split_py(name)
    if path is not None:
        return from_python_file(path, cls)
    raise UsageError(f"cannot use {name!r} as a schema",
                     hint="give a schema name, a .json file or a .py file (path.py:ClassName)")


def _known() -> str:
    return (f"known schemas: {', '.join(names())}; or a path: schema.json (JSON Schema), "
            "module.py:ClassName (pydantic model)")


def _split_py(name: str) -> tuple[Path | None, str | None]:
    m = re.fullmatch(r"(.+\.py)(?::([A-Za-z_][A-Za-z0-9_]*))?", name)
    if not m:
        return None, None
    return Path(m[1]), m[2]


@functools.cache
def builtin(name: str) -> Spec:
    module = importlib.import_module(f"{__package__}.{name}")
    return from_module(name, module)


def from_module(name: str, module: ModuleType) -> Spec:
    """A Spec from a module shaped like a built-in one: `Model`, `VERSION`, `INSTRUCTION`,
    optional `validate(model_instance) -> list[Issue]` and `mask(data) -> (data, paths)`."""
    model = getattr(module, "Model", None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise UsageError(f"schema module {name!r} has no pydantic `Model` class",
                         hint="define Model, VERSION and INSTRUCTION as the built-in schemas do")
    return from_model(name, model, version=str(getattr(module, "VERSION", "")) or None,
                      instruction=getattr(module, "INSTRUCTION", None),
                      domain=getattr(module, "validate", None),
                      masker=getattr(module, "mask", None),
                      decoder_form=name in BUILTIN)


def from_model(name: str, model: type[BaseModel], *, version: str | None = None,
               instruction: str | None = None,
               domain: Callable[[Any], list[Issue]] | None = None,
               masker: Callable[[dict], tuple[dict, list[str]]] | None = None,
               decoder_form: bool = False) -> Spec:
    """A Spec from a pydantic model. `decoder_form` (the built-ins) makes every key required and
    forbids unknown keys in the JSON Schema, and validates the JSON Schema before pydantic."""
    try:
        schema = model.model_json_schema()
    except Exception as exc:
        raise UsageError(f"cannot build a JSON Schema from {model.__name__}: {exc}") from None
    schema = compact_schema(schema, close_objects=decoder_form)
    problems = _jsonschema.unsupported(schema)
    if problems:
        raise UsageError(f"schema {name!r} uses features the decoder does not support: "
                         + "; ".join(problems),
                         hint="use plain types, str with pattern/max_length, Literal, nested "
                              "models and lists")
    version = version or _digest(schema)
    if instruction is None:
        instruction = _default_instruction(model.__doc__ or schema.get("description"))

    def run(obj: Any) -> Validation:
        data, problem = load(obj)
        if problem is not None:
            return Validation(None, [problem])
        if decoder_form:
            shape = [Issue(w, "schema", m) for w, m in _jsonschema.validate(data, schema)]
            if shape:
                return Validation(data if isinstance(data, dict) else None, shape)
        elif not isinstance(data, dict):
            return Validation(None, [Issue("", "schema", "expected a JSON object")])
        try:
            doc = model.model_validate(data)
        except ValidationError as exc:
            shape = pydantic_issues(exc)
            # Blank the fields pydantic rejected (an impossible date, say) and run the domain
            # rules on the rest, so that one bad field does not hide every other finding.
            doc = _validate_without(model, data, exc)
            if doc is None or domain is None:
                return Validation(data, shape)
            blanked = {i.loc for i in shape}
            found = [i for i in _domain(domain, doc) if i.loc not in blanked]
            return Validation(data, shape + found)
        except Exception as exc:
            return Validation(data, [Issue("", "schema", f"the model rejected the data: "
                                                         f"{type(exc).__name__}")])
        found = _domain(domain, doc) if domain is not None else []
        try:
            dumped = doc.model_dump(mode="json")
        except Exception:
            dumped = data
        return Validation(dumped, found)

    return Spec(name=name, version=version, instruction=instruction, json_schema=schema,
                validator=run, masker=masker, model=model)


def from_json_schema(name: str, schema: Any) -> Spec:
    """A Spec for a user's JSON Schema: shape validation only, no domain rules, no masking."""
    problems = _jsonschema.unsupported(schema)
    if problems:
        raise UsageError(f"schema {name!r} uses JSON Schema features the decoder does not "
                         "support: " + "; ".join(problems),
                         hint="supported: " + ", ".join(sorted(_jsonschema.SUPPORTED)))
    if schema.get("type") != "object":
        raise UsageError(f"schema {name!r} must describe a JSON object (\"type\": \"object\")")
    schema = copy.deepcopy(schema)

    def run(obj: Any) -> Validation:
        data, problem = load(obj)
        if problem is not None:
            return Validation(None, [problem])
        shape = [Issue(w, "schema", m) for w, m in _jsonschema.validate(data, schema)]
        return Validation(data if isinstance(data, dict) else None, shape)

    return Spec(name=name, version=str(schema.get("version") or _digest(schema)),
                instruction=_default_instruction(schema.get("description")), json_schema=schema,
                validator=run)


def from_json_file(path: Path) -> Spec:
    text = _read(path)
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
    return from_json_schema(path.stem, schema)


def from_python_file(path: Path, cls: str | None) -> Spec:
    _read(path)
    module_name = f"docextract_user_schema_{_digest(str(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise UsageError(f"{path} failed to import: {type(exc).__name__}: {exc}") from None
    if cls is None:
        return from_module(path.stem, module)
    model = getattr(module, cls, None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise UsageError(f"{path} has no pydantic model named {cls!r}",
                         hint=f"models in it: {', '.join(_models(module)) or 'none'}")
    return from_model(cls, model, version=getattr(module, "VERSION", None),
                      instruction=getattr(model, "INSTRUCTION", None))


def _models(module: ModuleType) -> list[str]:
    return sorted(n for n, v in vars(module).items()
                  if isinstance(v, type) and issubclass(v, BaseModel) and v is not BaseModel
                  and v.__module__ == module.__name__)


def _from_entry_point(name: str, ep: Any) -> Spec:
    try:
        target = ep.load()
    except Exception as exc:
        raise UsageError(f"the schema {name!r} registered by another package failed to load: "
                         f"{type(exc).__name__}: {exc}") from None
    if isinstance(target, Spec):
        return target
    if isinstance(target, ModuleType):
        return from_module(name, target)
    if isinstance(target, type) and issubclass(target, BaseModel):
        return from_model(name, target)
    raise UsageError(f"the entry point {name!r} is neither a schema module, a Spec nor a "
                     "pydantic model")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"schema file {path} does not exist",
                         hint="check the path, or give a schema name: " + ", ".join(names())
                         ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read schema file {path}: {exc}") from None


def _digest(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _default_instruction(description: str | None) -> str:
    head = f"{description.strip()}\n" if description else ""
    return (f"{head}Extract the fields of the JSON Schema from the document. Dates as "
            "YYYY-MM-DD, amounts as printed without currency signs or thousands separators. "
            "Use null (where the schema allows it) for anything not visible on the document. "
            "Never guess or complete a value.")


def compact_schema(schema: dict, close_objects: bool) -> dict:
    """Drop titles, defaults, descriptions and examples (the instruction explains the fields;
    the model reads the schema in its prompt); with `close_objects` every object lists all its
    properties as required and allows no others."""
    out = copy.deepcopy(schema)
    for _, sub in _jsonschema.subschemas(out):
        for key in _ANNOTATION_KEYS:
            sub.pop(key, None)
        if close_objects and "properties" in sub:
            sub["required"] = list(sub["properties"])
            sub["additionalProperties"] = False
    return out


def load(obj: Any) -> tuple[Any, Issue | None]:
    """A parsed JSON value from text, bytes or an already parsed value; an Issue of type "json"
    instead of raising when the text is not JSON."""
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json"), None
    if isinstance(obj, (bytes, bytearray)):
        try:
            obj = bytes(obj).decode("utf-8-sig")
        except UnicodeDecodeError:
            return None, Issue("", "json", "the input is not UTF-8 text")
    if isinstance(obj, str):
        try:
            return json.loads(obj, parse_constant=_reject_constant), None
        except RecursionError:
            return None, Issue("", "json", "the JSON nests too deeply")
        except ValueError as exc:
            return None, Issue("", "json", f"not valid JSON: {exc}")
    return obj, None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _domain(domain: Callable[[Any], list[Issue]], doc: Any) -> list[Issue]:
    """The domain rules' findings; a failing rule is itself a finding, never an exception."""
    try:
        # Room for quantity x price of the widest patterns without rounding.
        with decimal.localcontext(prec=80):
            return list(domain(doc))
    except Exception as exc:
        return [Issue("", "validator_failed", f"the schema's validator failed: {type(exc).__name__}")]


def _validate_without(model: type[BaseModel], data: Any, exc: ValidationError) -> Any:
    """The model validated with every field that failed set to null, or None when that does not
    validate either (a field that cannot be null, a rule across fields)."""
    blank = copy.deepcopy(data)
    for err in exc.errors(include_url=False, include_input=False):
        where = err.get("loc", ())
        if not where:
            return None
        node = blank
        for part in where[:-1]:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return None
        if not isinstance(node, (dict, list)):
            return None
        try:
            node[where[-1]] = None
        except (IndexError, TypeError):
            return None
    try:
        return model.model_validate(blank)
    except Exception:
        return None


def pydantic_issues(exc: ValidationError) -> list[Issue]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ""
        for part in err.get("loc", ()):
            where = f"{where}[{part}]" if isinstance(part, int) else (
                f"{where}.{part}" if where else str(part))
        code = err.get("type", "schema")
        out.append(Issue(where, code if code in CODES else "schema", str(err.get("msg", ""))))
    return out
