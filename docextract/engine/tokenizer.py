"""The checkpoint's tokenizer and chat prompt.

`tokenizer.json` is read with the `tokenizers` library (byte-level BPE, NFC, Qwen pre-tokenise
regex: all in the file). The chat prompt is rendered from the checkpoint's own chat template
(`chat_template.jinja`, else `chat_template` in tokenizer_config.json, else chat_template.json) in
a sandboxed jinja2 environment set up as transformers sets up its own, with thinking disabled (an
empty think block); a checkpoint without a template gets `BUILTIN_CHAT_TEMPLATE`, which renders
the Qwen3.5 format. Each image is one `<|vision_start|><|image_pad|><|vision_end|>` in the text and
is expanded to grid_t*grid_h*grid_w/merge^2 `<|image_pad|>` ids when the prompt is tokenised.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ModelError
from .config import ModelConfig

IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
VISION_START, VISION_END, IMAGE_PAD = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"
REQUIRED_TOKENS = (IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD)
# The Qwen3.5 template has about 7,000 characters.
MAX_TEMPLATE_CHARS = 1 << 20

# The Qwen3.5 chat format for system, user and assistant turns with images, written for
# checkpoints that ship no template. Thinking off: "<think>\n\n</think>\n\n" after the header.
BUILTIN_CHAT_TEMPLATE = """\
{%- macro content_text(content) %}
{%- if content is string %}{{- content }}
{%- else %}
{%- for item in content %}
{%- if item.type == 'image' %}{{- '<|vision_start|><|image_pad|><|vision_end|>' }}
{%- elif item.type == 'text' %}{{- item.text }}
{%- else %}{{- raise_exception('unexpected content item ' ~ item.type) }}
{%- endif %}
{%- endfor %}
{%- endif %}
{%- endmacro %}
{%- for message in messages %}
{{- '<|im_start|>' + message.role + '\\n' + content_text(message.content)|trim + '<|im_end|>\\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\\n' }}
{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}
{%- else %}{{- '<think>\\n' }}
{%- endif %}
{%- endif %}
"""


@dataclass(frozen=True)
class ImageSlot:
    """An image's place in the user content. `grid_thw` (patches along t, h, w, before merging)
    sets how many `<|image_pad|>` ids it becomes; it may instead be passed to `build_prompt_ids`."""

    grid_thw: tuple[int, int, int] | None = None


Content = Sequence["str | ImageSlot"]


@lru_cache(maxsize=256)
def _byte_decoder() -> dict[str, int]:
    """The inverse of byte-level BPE's byte -> printable character table (GPT-2's)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars = list(printable)
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars)}


@lru_cache(maxsize=16)
def _compile(template: str):
    from .sandbox import environment

    return environment().from_string(template)


class Tokenizer:
    """tokenizer.json + chat template of one checkpoint."""

    def __init__(self, backend: Any, *, chat_template: str | None = None,
                 template_source: str = "built-in", config: ModelConfig | None = None,
                 special_tokens_map: dict[str, str] | None = None,
                 extra_stop_ids: Sequence[int] = ()):
        self._tok = backend
        if chat_template is not None:
            _check_template(chat_template, template_source)
        self.chat_template = chat_template or BUILTIN_CHAT_TEMPLATE
        self.template_source = template_source if chat_template else "built-in"
        self.config = config
        self.special_tokens_map = dict(special_tokens_map or {})
        added = backend.get_added_tokens_decoder()
        self.added_ids = frozenset(added)
        self.special_ids = frozenset(i for i, t in added.items() if t.special)
        self._added_content = {i: t.content for i, t in added.items()}
        ids = {}
        for token in REQUIRED_TOKENS:
            ids[token] = backend.token_to_id(token)
        missing = [t for t, i in ids.items() if i is None]
        if missing:
            raise ModelError(f"tokenizer lacks the Qwen chat/vision tokens {missing}",
                             hint="is tokenizer.json from a Qwen3.5 checkpoint?")
        self.im_start_id, self.im_end_id = ids[IM_START], ids[IM_END]
        self.vision_start_id, self.vision_end_id = ids[VISION_START], ids[VISION_END]
        self.image_pad_id = ids[IMAGE_PAD]
        self.endoftext_id = backend.token_to_id(ENDOFTEXT)
        self.merge_size = 2
        stops = [self.im_end_id, self.endoftext_id]
        if config is not None:
            self.merge_size = config.vision_config.spatial_merge_size
            for name, mine in (("image_token_id", self.image_pad_id),
                               ("vision_start_token_id", self.vision_start_id),
                               ("vision_end_token_id", self.vision_end_id)):
                if getattr(config, name) != mine:
                    raise ModelError(f"tokenizer and config.json disagree: config {name} is "
                                     f"{getattr(config, name)}, the tokenizer has {mine}",
                                     hint="the tokenizer comes from another model")
            stops += config.eos_token_ids
        stops += list(extra_stop_ids)
        self.stop_ids: list[int] = list(dict.fromkeys(i for i in stops if i is not None))

    @classmethod
    def from_dir(cls, model_dir: str | Path, config: ModelConfig | None = None) -> Tokenizer:
        """The tokenizer of checkpoint folder `model_dir` (tokenizer.json + chat template)."""
        from tokenizers import Tokenizer as Backend

        model_dir = Path(model_dir)
        path = model_dir / "tokenizer.json"
        if not path.is_file():
            raise ModelError(f"no tokenizer.json in {model_dir}",
                             hint="pull the checkpoint again with `docextract model pull`")
        try:
            backend = Backend.from_file(str(path))
        except Exception as exc:
            raise ModelError(f"cannot read {path}: {exc}") from exc
        tok_config = _read_json(model_dir / "tokenizer_config.json") or {}
        template, source = _find_template(model_dir, tok_config)
        specials = {k: v for k, v in tok_config.items()
                    if k in ("bos_token", "eos_token", "pad_token", "unk_token")
                    and isinstance(v, str)}
        generation = _read_json(model_dir / "generation_config.json") or {}
        extra = generation.get("eos_token_id")
        extra = [] if extra is None else extra if isinstance(extra, list) else [extra]
        return cls(backend, chat_template=template, template_source=source, config=config,
                   special_tokens_map=specials, extra_stop_ids=[int(i) for i in extra])

    @property
    def vocab_size(self) -> int:
        """Tokens the tokenizer knows, added tokens included (the model's vocab may be larger)."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    def to_json(self) -> str:
        """The tokenizer as tokenizer.json text (what the grammar library reads)."""
        return self._tok.to_str()

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; special tokens written in it are recognised. No BOS is added."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self._tok.id_to_token(token_id)

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes token `token_id` stands for (b"" for an id with no token)."""
        if token_id in self._added_content:
            return self._added_content[token_id].encode("utf-8")
        token = self._tok.id_to_token(token_id)
        if token is None:
            return b""
        table = _byte_decoder()
        try:
            return bytes(table[c] for c in token)
        except KeyError:
            return token.encode("utf-8")

    def vocab_bytes(self) -> list[bytes]:
        """token_bytes of every id below `vocab_size`."""
        return [self.token_bytes(i) for i in range(self.vocab_size)]

    def messages(self, content: Content, system: str | None = None) -> list[dict[str, Any]]:
        """The chat of one user turn in the message form chat templates take."""
        items: list[dict[str, Any]] = []
        for part in content:
            if isinstance(part, ImageSlot):
                items.append({"type": "image"})
            elif isinstance(part, str):
                items.append({"type": "text", "text": part})
            else:
                raise ModelError(f"engine: prompt content must be text or ImageSlot, got "
                                 f"{type(part).__name__}")
        chat: list[dict[str, Any]] = []
        if system is not None:
            chat.append({"role": "system", "content": system})
        chat.append({"role": "user", "content": items})
        return chat

    def render(self, content: Content, system: str | None = None, *,
               add_vision_id: bool = False) -> str:
        """Chat prompt text for one user turn (text and images in order), thinking disabled,
        ending with the assistant header. One `<|image_pad|>` per image."""
        try:
            template = _compile(self.chat_template)
            return template.environment.render_limited(
                template, messages=self.messages(content, system), add_generation_prompt=True,
                enable_thinking=False, add_vision_id=add_vision_id, tools=None,
                **self.special_tokens_map)
        except ModelError:
            raise
        except Exception as exc:  # MemoryError and RecursionError included
            raise ModelError(f"chat template ({self.template_source}) failed: "
                             f"{_first_line(exc)}",
                             hint="the model folder's chat template is broken; pull the "
                                  "checkpoint again or delete the template to use the "
                                  "built-in Qwen3.5 one") from exc

    def image_pad_count(self, grid_thw: Sequence[int]) -> int:
        """`<|image_pad|>` ids for an image of grid (t, h, w) patches."""
        t, h, w = (int(x) for x in grid_thw)
        return t * h * w // (self.merge_size ** 2)

    def expand_image_pads(self, ids: Sequence[int], grids: Sequence[Sequence[int]]) -> list[int]:
        """Replace the i-th `<|image_pad|>` of `ids` by image_pad_count(grids[i]) copies."""
        positions = [k for k, i in enumerate(ids) if i == self.image_pad_id]
        if len(positions) != len(grids):
            raise ModelError(f"engine: prompt has {len(positions)} image placeholders for "
                             f"{len(grids)} images")
        out: list[int] = []
        start = 0
        for pos, grid in zip(positions, grids):
            out.extend(ids[start:pos])
            out.extend([self.image_pad_id] * self.image_pad_count(grid))
            start = pos + 1
        out.extend(ids[start:])
        return out

    def build_prompt_ids(self, content: Content, system: str | None = None,
                         image_grid_thw: Sequence[Sequence[int]] | None = None) -> list[int]:
        """Token ids of the rendered prompt with each image's pads expanded. Grids come from
        `image_grid_thw` ([n, 3], in image order) or else from the ImageSlots."""
        if image_grid_thw is None:
            slots = [p for p in content if isinstance(p, ImageSlot)]
            if any(s.grid_thw is None for s in slots):
                raise ModelError("engine: an ImageSlot has no grid_thw and no image_grid_thw "
                                 "was given")
            image_grid_thw = [s.grid_thw for s in slots]
        grids = [tuple(int(x) for x in g) for g in image_grid_thw]
        return self.expand_image_pads(self.encode(self.render(content, system)), grids)


def _check_template(template: Any, source: str) -> None:
    """A template that is given must be text with something in it, and of a sane size: an empty
    one would silently render nothing (every document then fails in the model)."""
    if not isinstance(template, str) or not template.strip():
        raise ModelError(f"the chat template in {source} is empty",
                         hint="delete it (or its chat_template entry) to use the built-in Qwen3.5 "
                              "template, or pull the checkpoint again")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise ModelError(f"the chat template in {source} has {len(template):,} characters, above "
                         f"the limit of {MAX_TEMPLATE_CHARS:,}",
                         hint="a chat template is a few kilobytes; pull the checkpoint again")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    except RecursionError:
        raise ModelError(f"cannot read {path}: the JSON nests too deeply") from None
    return data if isinstance(data, dict) else None


def _find_template(model_dir: Path, tok_config: dict[str, Any]) -> tuple[str | None, str]:
    """The checkpoint's chat template and where it was found; (None, "built-in") when it ships
    none. A template that is there but empty is refused (see _check_template)."""
    jinja_file = model_dir / "chat_template.jinja"
    if jinja_file.is_file():
        try:
            with open(jinja_file, encoding="utf-8") as f:
                text = f.read(MAX_TEMPLATE_CHARS + 1)  # never more than the limit into memory
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"cannot read {jinja_file}: {exc}") from exc
        _check_template(text, jinja_file.name)
        return text, jinja_file.name
    template = tok_config.get("chat_template")
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    if template is not None:
        _check_template(template, "tokenizer_config.json")
        return template, "tokenizer_config.json"
    legacy = _read_json(model_dir / "chat_template.json") or {}
    if "chat_template" in legacy:
        _check_template(legacy["chat_template"], "chat_template.json")
        return legacy["chat_template"], "chat_template.json"
    return None, "built-in"
