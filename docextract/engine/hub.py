"""`docextract model pull REPO_ID`: fetch the files the engine needs from the Hugging Face Hub.

Only the engine's files are fetched (never pickle weights, never subfolders). config.json comes
first and is checked, so an unsupported model fails before gigabytes are downloaded. Downloads
resume where they stopped (huggingface_hub keeps the partial files). Progress is reported through
a callback; nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ModelError, UsageError

ENGINE_FILES = [
    "config.json", "generation_config.json", "*.safetensors", "model.safetensors.index.json",
    "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
    "preprocessor_config.json",
]
# Subfolders (originals, other formats) and pickled weights are never fetched.
NEVER_FILES = ["*/*", "*.bin", "*.pt", "*.pth", "*.pkl", "*.ckpt"]

Progress = Callable[[int, int], None]


def _progress_class(callback: Progress) -> type:
    """A silent tqdm that forwards byte counts to `callback(done_bytes, total_bytes)`."""
    from tqdm.auto import tqdm

    bars: list[Any] = []

    class Forward(tqdm):
        def __init__(self, *args: Any, **kwargs: Any):
            kwargs.pop("name", None)
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self.is_bytes = kwargs.get("unit") == "B"
            self.done = int(kwargs.get("initial") or 0)
            if self.is_bytes:
                bars.append(self)

        def update(self, n: float | None = 1) -> bool | None:
            if not self.is_bytes:
                return None
            self.done += int(n or 0)
            # Several byte bars (bytes on the wire, bytes written) count the same files.
            done = max(b.done for b in bars)
            total = max(int(b.total or 0) for b in bars)
            callback(done, max(total, done))
            return None

    return Forward


def looks_like_path(model: str) -> bool:
    """Whether `--model` names a local folder rather than a Hub repository (OWNER/NAME): it starts
    with /, . or ~, has a backslash, a trailing slash or other than one slash, or a part of it
    exists here (`models/tpyo` where ./models is a folder). Such a string is never sent to the
    Hub, so a mistyped folder is reported as missing, not looked up online."""
    import os

    if not model or model.startswith(("/", ".", "~")) or "\\" in model:
        return True
    if model.count("/") != 1 or model.endswith("/"):
        return True
    owner = model.split("/", 1)[0]
    return os.path.lexists(model) or os.path.lexists(owner)


def missing_folder_hint(model: str) -> str:
    """A hint for a `--model` path that is not a model folder: the closest names in the deepest
    folder that exists, and how a repository id is told apart."""
    import difflib

    path = Path(model).expanduser()
    parent = path.parent
    while not parent.is_dir() and parent != parent.parent:
        path, parent = parent, parent.parent
    hint = ""
    if parent.is_dir():
        try:
            names = sorted(p.name for p in parent.iterdir() if p.is_dir())
        except OSError:
            names = []
        close = difflib.get_close_matches(path.name, names, n=3)
        if close:
            shown = ", ".join(str(parent / c) if str(parent) != "." else c for c in close)
            hint = f"did you mean {shown}? "
    return (hint + "a path is never looked up on the Hub; a repository id is OWNER/NAME where no "
            "local folder OWNER exists (download one with 'docextract model pull REPO_ID')")


def pull(repo_id: str, dest: str | Path | None = None, *, offline: bool = False,
         progress: Progress | None = None, revision: str | None = None) -> Path:
    """Download the engine's files of `repo_id` (into `dest`, else the Hugging Face cache) and
    return the checkpoint folder. With `offline`, only the local cache is used."""
    import huggingface_hub
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except ValueError as exc:
        raise UsageError(f"invalid model repository id {repo_id!r}",
                         hint="expected OWNER/NAME, e.g. Qwen/Qwen3.5-35B-A3B") from exc
    kwargs: dict[str, Any] = {
        "revision": revision, "local_files_only": offline, "ignore_patterns": NEVER_FILES,
        "local_dir": str(dest) if dest is not None else None}
    if progress is not None:
        kwargs["tqdm_class"] = _progress_class(progress)
    with _hub_errors(repo_id, revision, offline, dest):
        folder = Path(huggingface_hub.snapshot_download(repo_id, allow_patterns=["config.json"],
                                                        **kwargs))
        _check_config(folder, repo_id)
        folder = Path(huggingface_hub.snapshot_download(repo_id, allow_patterns=ENGINE_FILES,
                                                        **kwargs))
    if not any(folder.glob("*.safetensors")):
        raise ModelError(f"{repo_id} has no safetensors weights",
                         hint="docextract loads only safetensors checkpoints (never pickle "
                              "files); choose a repository that ships *.safetensors")
    if not (folder / "tokenizer.json").is_file():
        raise ModelError(f"{repo_id} has no tokenizer.json",
                         hint="choose the official Qwen3.5 repository or one with its tokenizer")
    return folder


def _check_config(folder: Path, repo_id: str) -> None:
    from .config import load_config

    if not (folder / "config.json").is_file():
        raise ModelError(f"{repo_id} has no config.json", hint="is this a model repository?")
    load_config(folder)


@contextmanager
def _hub_errors(repo_id: str, revision: str | None, offline: bool,
                dest: str | Path | None) -> Iterator[None]:
    """Turns huggingface_hub and network failures into ModelErrors with a hint."""
    try:
        yield
    except (ModelError, UsageError):
        raise
    except Exception as exc:
        translated = _translate(exc, repo_id, revision, offline, dest)
        if translated is None:
            raise
        raise translated from exc


def _translate(exc: Exception, repo: str, revision: str | None, offline: bool,
               dest: str | Path | None) -> ModelError | None:
    from huggingface_hub import errors

    resume = "run the same command again; it resumes where it stopped"
    if isinstance(exc, errors.IncompleteSnapshotError):
        return ModelError(f"the cached copy of {repo} is incomplete and the Hub cannot be "
                          "reached", hint="run `docextract model pull` online once more; it "
                                          "resumes where it stopped")
    if isinstance(exc, (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled)):
        if offline:
            hint = "run `docextract model pull` without --offline once to download it"
        else:
            hint = ("check the network connection (or HF_ENDPOINT / proxy settings); "
                    "HF_HUB_OFFLINE=1 also blocks downloads")
        return ModelError(f"{repo} is not in the local cache and cannot be downloaded", hint=hint)
    if isinstance(exc, errors.GatedRepoError):
        return ModelError(f"{repo} is gated",
                          hint="accept its licence on the model page and set HF_TOKEN")
    if isinstance(exc, errors.RepositoryNotFoundError):
        return ModelError(f"model repository not found: {repo}",
                          hint="check the spelling (OWNER/NAME); a private repository needs "
                               "HF_TOKEN")
    if isinstance(exc, errors.RevisionNotFoundError):
        return ModelError(f"revision {revision!r} not found in {repo}",
                          hint="use a branch, tag or commit of the repository")
    if isinstance(exc, errors.HfHubHTTPError):
        return ModelError(f"download of {repo} failed: {_first_line(exc)}", hint=resume)
    network = type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "requests", "urllib3")
    if network or isinstance(exc, (ConnectionError, TimeoutError)):
        return ModelError(f"network error while downloading {repo}: {_first_line(exc)}",
                          hint="check the connection; " + resume)
    if isinstance(exc, OSError):
        return ModelError(f"cannot write the download to {dest or 'the Hugging Face cache'}: "
                          f"{exc}", hint="check free disk space and permissions (HF_HOME moves "
                                         "the cache)")
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# Default checkpoint per machine when neither --model nor DOCEXTRACT_MODEL is given:
# (minimum GPU memory in GiB, repository, expert precision). Weight sizes from qwen35.md and
# performance.md (bf16: 2 bytes a parameter; 35B-A3B with int4 routed experts: 22-25 GB), with
# room left for the KV cache, DeltaNet state and activations.
DEFAULT_MODELS = [
    (80.0, "Qwen/Qwen3.5-35B-A3B", "bf16"),  # ~67 GiB of weights
    (32.0, "Qwen/Qwen3.5-35B-A3B", "int4"),  # ~23 GiB with int4 experts
    (24.0, "Qwen/Qwen3.5-9B", "bf16"),       # ~18 GiB
    (12.0, "Qwen/Qwen3.5-4B", "bf16"),       # ~8 GiB
    (6.0, "Qwen/Qwen3.5-2B", "bf16"),        # ~4 GiB
    (0.0, "Qwen/Qwen3.5-0.8B", "bf16"),      # ~1.6 GiB; also the CPU default
]


def default_model(gpu_memory_gib: float | None) -> tuple[str, str]:
    """(repository, expert precision) suited to a machine: by GPU memory, or the smallest model
    without a GPU."""
    if not gpu_memory_gib:
        return DEFAULT_MODELS[-1][1:]
    return next((repo, experts) for need, repo, experts in DEFAULT_MODELS if gpu_memory_gib >= need)


def default_repo(gpu_memory_gib: float | None) -> str:
    return default_model(gpu_memory_gib)[0]


def download_size(repo_id: str, revision: str | None = None) -> int | None:
    """Bytes of the engine's files in `repo_id` (one metadata request), None if unknown."""
    from fnmatch import fnmatch

    import huggingface_hub

    try:
        info = huggingface_hub.HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    except Exception:  # the size is only informative; pull() reports real failures
        return None
    total = 0
    for f in info.siblings or []:
        name = f.rfilename
        if any(fnmatch(name, p) for p in NEVER_FILES) or not any(fnmatch(name, p) for p in ENGINE_FILES):
            continue
        total += f.size or 0
    return total or None


def cached(repo_id: str, revision: str | None = None) -> Path | None:
    """The complete local copy of `repo_id` in the Hugging Face cache, if there is one."""
    import huggingface_hub

    try:
        folder = Path(huggingface_hub.snapshot_download(
            repo_id, revision=revision, local_files_only=True, allow_patterns=ENGINE_FILES,
            ignore_patterns=NEVER_FILES))
    except Exception:
        return None
    if (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
        return folder
    return None
