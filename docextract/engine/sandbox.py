"""A jinja2 sandbox for the checkpoint's chat template, with a time and a size limit.

A model folder is untrusted input and its chat template is a program. jinja2's
`ImmutableSandboxedEnvironment` (as transformers uses it) blocks attribute escapes and mutation
but not exhaustion: `{{ 'A' * 10000000000 }}` allocates 10 GB and two nested `range(100000)`
loops run for hours. Here every rendering has a deadline (`TIME_LIMIT_S` of wall-clock time) and
no value may grow past `MAX_CHARS` characters, the rendered prompt included. The checks sit where
the sandbox already routes work through the environment:

- every call, attribute and item lookup, loop iteration (each `for` iterable is wrapped) and
  buffer join (`environment.concat`, which macros, blocks and the output go through) checks the
  deadline;
- `*`, `**`, `%` and `+` are intercepted and refused when their result would be too large (sizes
  estimated from the operands, before anything is allocated); `~` joins are counted as they go;
- every filter and every `str` method call is refused when an integer argument exceeds the size
  limit (a width, a count) or when its result would (`replace`, `join`, `indent`, `wordwrap`,
  `expandtabs`, format widths), and its result is measured.

A template that breaks a limit raises `TemplateLimitError`; the tokenizer turns it into a
ModelError (exit 4).
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime
from functools import wraps
from typing import Any, Callable, Iterable, Iterator

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

# The prompt is an instruction, a schema and one placeholder per page: a few KB. 1 Mi characters
# is far above any real prompt and far below what could hurt the machine.
MAX_CHARS = 1 << 20
# A real template renders in about a millisecond.
TIME_LIMIT_S = 2.0
# Integers may not grow past this many bits (`n * n` or `**` in a loop).
MAX_INT_BITS = 1 << 16
# Loop iterations between two looks at the clock.
_TICK_EVERY = 1024
# Widths and precisions in printf-style (`%10.2f`) and str.format (`{:>10}`) format strings.
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\d*)(?:\.(\d*))?")
_FORMAT_SPEC = re.compile(r"\{[^{}]*:([^{}]*)\}")
_DIGITS = re.compile(r"\d+")


class TemplateLimitError(jinja2.exceptions.TemplateError):
    """The template went past the time or size limit."""


def _weight(value: Any, budget: int = MAX_CHARS) -> int:
    """Characters (strings) or elements (containers, counted with what they hold) of `value`;
    stops counting once past `budget`."""
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, dict):
        value = list(value.items())
    if not isinstance(value, (list, tuple)):
        return 1
    total = len(value)
    stack = [iter(value)]
    while stack and total <= budget:
        item = next(stack[-1], StopIteration)
        if item is StopIteration:
            stack.pop()
        elif isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, (list, tuple, dict)):
            item = list(item.items()) if isinstance(item, dict) else item
            total += len(item)
            stack.append(iter(item))
    return total


class _Limits(threading.local):
    deadline: float | None = None


class _Generator(CodeGenerator):
    """Compiles `for` iterables through `environment.timed_iter` and `~` joins through
    `environment.checked_join`, so that both are limited."""

    def visit_For(self, node: nodes.For, frame: Any) -> None:
        node.iter = nodes.Call(nodes.EnvironmentAttribute("timed_iter"), [node.iter], [],
                               None, None, lineno=node.lineno)
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:
        if frame.eval_ctx.volatile or frame.eval_ctx.autoescape:
            super().visit_Concat(node, frame)
            return
        self.write("environment.checked_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """ImmutableSandboxedEnvironment with a deadline per rendering and a size limit on values."""

    code_generator_class = _Generator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = _Limits()
        self.globals.pop("lipsum", None)
        self.globals["range"] = self._range
        self.filters = {name: self._limited_filter(name, f) for name, f in self.filters.items()}

    # -- the clock
    def tick(self) -> None:
        deadline = self.limits.deadline
        if deadline is not None and time.monotonic() > deadline:
            raise TemplateLimitError(f"rendering took longer than {TIME_LIMIT_S:g} s")

    def render_limited(self, template: jinja2.Template, **context: Any) -> str:
        """`template` rendered within the limits."""
        self.limits.deadline = time.monotonic() + TIME_LIMIT_S
        try:
            return template.render(**context)
        finally:
            self.limits.deadline = None

    def timed_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        if isinstance(iterable, (list, tuple, dict, str)) and len(iterable) < _TICK_EVERY:
            return iter(iterable)
        return self._ticking(iterable)

    def _ticking(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for k, item in enumerate(iterable):
            if k % _TICK_EVERY == 0:
                self.tick()
            yield item

    def _range(self, *args: int) -> range:
        self.tick()
        return safe_range(*args)

    # -- joins: the output, macro and block buffers (`concat`) and `~`
    def concat(self, pieces: Iterable[str]) -> str:  # type: ignore[override]
        parts, total = [], 0
        for k, piece in enumerate(pieces):
            total += len(piece)
            if total > MAX_CHARS:
                raise _too_large("the rendered text")
            if k % _TICK_EVERY == 0:
                self.tick()
            parts.append(piece)
        return "".join(parts)

    def checked_join(self, values: tuple[Any, ...]) -> str:
        return self.concat(v if isinstance(v, str) else _limited_str(v) for v in values)

    # -- operators
    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self.tick()
        _check_binop(operator, left, right)
        return _measured(super().call_binop(context, operator, left, right), operator)

    # -- lookups and calls
    def getattr(self, obj: Any, attribute: str) -> Any:
        self.tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        self.tick()
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        __self.tick()
        # str.format comes wrapped by the sandbox (its formatter); the wrapper keeps the method.
        method = getattr(__obj, "__wrapped__", __obj)
        owner = getattr(method, "__self__", None)
        name = getattr(method, "__name__", "")
        if isinstance(owner, str):
            _check_arguments(f"str.{name}", args, kwargs)
            _check_growth(name, owner, args, kwargs)
        return _measured(super().call(__context, __obj, *args, **kwargs), name or "a call")

    def _limited_filter(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        passes = getattr(fn, "jinja_pass_arg", None) is not None

        @wraps(fn)
        def limited(*args: Any, **kwargs: Any) -> Any:
            self.tick()
            values = args[1:] if passes else args
            _check_arguments(f"filter {name}", values[1:], kwargs)
            if values:
                _check_growth(name, values[0], values[1:], kwargs, is_filter=True)
            return _measured(fn(*args, **kwargs), f"filter {name}")

        return limited


def _too_large(what: str) -> TemplateLimitError:
    return TemplateLimitError(f"{what} would exceed {MAX_CHARS:,} characters")


def _limited_str(value: Any) -> str:
    if _weight(value) > MAX_CHARS:
        raise _too_large("a joined value")
    return str(value)


def _measured(value: Any, what: str) -> Any:
    if isinstance(value, (str, bytes, list, tuple, dict)) and _weight(value) > MAX_CHARS:
        raise _too_large(f"the result of {what}")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimitError(f"the result of {what} is a number above {MAX_INT_BITS} bits")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, (str, bytes, list, tuple)) and _is_int(n):
                if n > 0 and _weight(seq) * n > MAX_CHARS:
                    raise _too_large(f"repeating a value {n:,} times")
        if _is_int(left) and _is_int(right) and (left.bit_length() + right.bit_length()
                                                 > MAX_INT_BITS):
            raise TemplateLimitError(f"a product above {MAX_INT_BITS} bits")
    elif operator == "**":
        if _is_int(left) and _is_int(right) and right > 0 and (
                abs(left) > 1 and right * max(1, left.bit_length() - 1) > MAX_INT_BITS):
            raise TemplateLimitError(f"a power above {MAX_INT_BITS} bits")
    elif operator == "+":
        if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            if _weight(left) + _weight(right) > MAX_CHARS:
                raise _too_large("a concatenation")
    elif operator == "%" and isinstance(left, str):
        _check_widths(left, printf=True)
        values = right if isinstance(right, tuple) else (right,)
        if "*" in left and any(_is_int(v) and v > MAX_CHARS for v in values):
            raise _too_large("a formatted width")


def _check_widths(fmt: str, printf: bool) -> None:
    """Refuse a format string with a width or precision above the size limit."""
    if printf:
        numbers = [n for spec in _PRINTF_SPEC.findall(fmt) for n in spec if n]
    else:
        numbers = [n for spec in _FORMAT_SPEC.findall(fmt) for n in _DIGITS.findall(spec)]
    if any(len(n) > 9 or int(n) > MAX_CHARS for n in numbers):
        raise _too_large("a formatted width")


def _check_arguments(what: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """A width or count above the size limit can only make an oversized result."""
    for value in (*args, *kwargs.values()):
        if _is_int(value) and abs(value) > MAX_CHARS:
            raise _too_large(f"{what} with {value:,}")


def _check_growth(name: str, subject: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                  is_filter: bool = False) -> None:
    """Refuse the calls whose result can be much larger than their inputs, from the sizes."""
    text = subject if isinstance(subject, str) else None
    size = None
    if name == "replace" and text is not None and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        size = len(text) + (len(text) // max(1, len(old)) + 1) * len(new)
    elif name == "join":
        items = args[0] if text is not None and args else subject
        sep = text if text is not None else str(args[0] if args else kwargs.get("d", ""))
        if isinstance(items, (list, tuple, dict)):
            size = _weight(items) + len(sep) * len(items)
    elif name in ("indent", "wordwrap", "expandtabs") and text is not None:
        width = args[0] if args else kwargs.get("width", kwargs.get("tabsize", 4))
        pad = len(width) if isinstance(width, str) else width if _is_int(width) else 0
        lines = text.count("\n") + text.count("\t") + 1
        if name == "wordwrap":
            wrap = args[2] if len(args) > 2 else kwargs.get("wrapstring") or "\n"
            pad, lines = len(str(wrap)), len(text) // max(1, pad) + 1
        size = len(text) + lines * pad
    elif name in ("format", "format_map") and text is not None:
        # The `format` filter is printf-style; str.format and format_map use {} fields.
        _check_widths(text, printf=is_filter)
    if size is not None and size > MAX_CHARS:
        raise _too_large(f"{name}")


def environment() -> LimitedSandbox:
    """The environment chat templates are compiled in, set up as transformers sets up its own:
    trim_blocks, lstrip_blocks, loop controls, `tojson`, `raise_exception`, `strftime_now`."""

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
               separators: Any = None, sort_keys: bool = False) -> str:
        if _is_int(indent) and indent > 64:
            raise _too_large(f"tojson with indent {indent:,}")
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = LimitedSandbox(trim_blocks=True, lstrip_blocks=True,
                         extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = env._limited_filter("tojson", tojson)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(str(fmt)[:100])
    return env
