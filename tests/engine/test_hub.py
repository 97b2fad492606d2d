"""`model pull` with huggingface_hub's download call replaced by a fake (no network)."""

from __future__ import annotations

import fnmatch
import json
import shutil
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import errors

from docextract.engine.hub import ENGINE_FILES, NEVER_FILES, pull
from docextract.errors import ModelError, UsageError

REPO_FILES = ["config.json", "generation_config.json", "model-00001-of-00002.safetensors",
              "model-00002-of-00002.safetensors", "model.safetensors.index.json",
              "tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
              "preprocessor_config.json", "vocab.json", "merges.txt", "README.md",
              "pytorch_model.bin", "original/model.safetensors", "training_args.pt"]


class FakeHub:
    """Serves a repository from a local folder the way snapshot_download does: filters by
    allow/ignore patterns, copies into local_dir (or a cache folder), reports bytes."""

    def __init__(self, source: Path, cache: Path, fail: BaseException | None = None,
                 fail_on_call: int = 1):
        self.source, self.cache, self.fail, self.fail_on_call = source, cache, fail, fail_on_call
        self.calls: list[dict] = []

    def __call__(self, repo_id, **kwargs):
        self.calls.append({"repo_id": repo_id, **kwargs})
        if self.fail is not None and len(self.calls) == self.fail_on_call:
            raise self.fail
        wanted = [f for f in REPO_FILES
                  if any(fnmatch.fnmatch(f, p) for p in kwargs["allow_patterns"])
                  and not any(fnmatch.fnmatch(f, p) for p in kwargs.get("ignore_patterns") or [])]
        out = Path(kwargs["local_dir"]) if kwargs.get("local_dir") else self.cache / "snapshot"
        out.mkdir(parents=True, exist_ok=True)
        sizes = {f: (self.source / f).stat().st_size for f in wanted if (self.source / f).exists()}
        bar = None
        if kwargs.get("tqdm_class") is not None:
            bar = kwargs["tqdm_class"](total=0, initial=0, unit="B", unit_scale=True,
                                       desc="Reconstructing")
            kwargs["tqdm_class"](total=len(wanted), desc="Fetching files").update(len(wanted))
        for f in wanted:
            if bar is not None:
                bar.total += sizes.get(f, 0)
            if (self.source / f).exists():
                target = out / f
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(self.source / f, target)
            if bar is not None:
                bar.update(sizes.get(f, 0))
        return str(out)


@pytest.fixture
def repo(tiny_checkpoint, tmp_path):
    """A fake remote repository holding the tiny sharded checkpoint plus files pull must skip."""
    src = tmp_path / "remote"
    shutil.copytree(tiny_checkpoint("moe", shards=2).path, src)
    for extra in ("vocab.json", "merges.txt", "README.md", "pytorch_model.bin",
                  "training_args.pt"):
        (src / extra).write_text("not for the engine")
    (src / "original").mkdir()
    (src / "original" / "model.safetensors").write_text("subfolder")
    return src


def _fake(monkeypatch, repo: Path, tmp_path: Path, **kw) -> FakeHub:
    fake = FakeHub(repo, tmp_path / "cache", **kw)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    return fake


def test_pull_fetches_only_the_engine_files(monkeypatch, repo, tmp_path):
    fake = _fake(monkeypatch, repo, tmp_path)
    seen = []
    dest = tmp_path / "model"
    folder = pull("Qwen/Qwen3.5-35B-A3B", dest, progress=lambda d, t: seen.append((d, t)))
    assert folder == dest
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f for f in REPO_FILES[:9])
    assert not (folder / "original").exists() and not (folder / "pytorch_model.bin").exists()
    first, second = fake.calls
    assert first["allow_patterns"] == ["config.json"]
    assert second["allow_patterns"] == ENGINE_FILES
    assert not any(fnmatch.fnmatch("pytorch_model.bin", p) for p in ENGINE_FILES)
    for call in fake.calls:
        assert call["repo_id"] == "Qwen/Qwen3.5-35B-A3B"
        assert call["local_dir"] == str(dest) and call["local_files_only"] is False
        assert call["ignore_patterns"] == NEVER_FILES
    total = sum((repo / f).stat().st_size for f in REPO_FILES[:9])
    assert seen[-1] == (total, total)
    assert all(d <= t for d, t in seen) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_pull_into_the_cache_and_offline(monkeypatch, repo, tmp_path):
    fake = _fake(monkeypatch, repo, tmp_path)
    folder = pull("Qwen/Qwen3.5-35B-A3B", offline=True, revision="main")
    assert folder == tmp_path / "cache" / "snapshot" and (folder / "tokenizer.json").is_file()
    assert all(c["local_files_only"] is True and c["local_dir"] is None
               and c["revision"] == "main" for c in fake.calls)
    assert "tqdm_class" not in fake.calls[0]


def test_unsupported_model_stops_after_config(monkeypatch, repo, tmp_path):
    config = json.loads((repo / "config.json").read_text())
    config["model_type"] = "llama"
    (repo / "config.json").write_text(json.dumps(config))
    fake = _fake(monkeypatch, repo, tmp_path)
    with pytest.raises(ModelError, match="llama"):
        pull("someone/llama", tmp_path / "m")
    assert len(fake.calls) == 1


def test_repo_without_safetensors(monkeypatch, repo, tmp_path):
    for f in repo.glob("model*.safetensors*"):
        f.unlink()
    _fake(monkeypatch, repo, tmp_path)
    with pytest.raises(ModelError, match="no safetensors") as err:
        pull("someone/pickled", tmp_path / "m")
    assert "pickle" in err.value.hint


def _response(status: int):
    import httpx2

    return httpx2.Response(status, request=httpx2.Request("GET", "http://hub.test/api/models/x"))


@pytest.mark.parametrize("error,offline,message,hint", [
    (lambda: errors.RepositoryNotFoundError("404", response=_response(404)), False,
     "not found", "HF_TOKEN"),
    (lambda: errors.GatedRepoError("403", response=_response(403)), False, "gated", "licence"),
    (lambda: errors.RevisionNotFoundError("404", response=_response(404)), False,
     "revision", "branch"),
    (lambda: errors.HfHubHTTPError("500 Server Error", response=_response(500)), False,
     "500 Server Error", "resumes"),
    (lambda: errors.LocalEntryNotFoundError("not cached"), True, "local cache", "without --offline"),
    (lambda: errors.LocalEntryNotFoundError("cannot reach"), False, "local cache", "network"),
    (lambda: errors.IncompleteSnapshotError("partial", snapshot_path="/x"), True, "incomplete",
     "resumes"),
    (lambda: __import__("httpx2").ConnectError("connection reset"), False, "network error",
     "resumes"),
    (lambda: OSError(28, "No space left on device"), False, "cannot write", "disk space"),
], ids=["not-found", "gated", "revision", "http", "offline", "no-network", "incomplete",
        "connect", "disk"])
def test_hub_failures_become_model_errors(monkeypatch, repo, tmp_path, error, offline, message,
                                          hint):
    _fake(monkeypatch, repo, tmp_path, fail=error(), fail_on_call=2)
    with pytest.raises(ModelError) as err:
        pull("Qwen/Qwen3.5-35B-A3B", tmp_path / "m", offline=offline, revision="v9")
    assert message in err.value.message and hint in err.value.hint


@pytest.mark.parametrize("repo_id", ["not a repo id", "a/b/c", "", "--flag"])
def test_invalid_repo_id_is_a_usage_error(monkeypatch, repo, tmp_path, repo_id):
    fake = _fake(monkeypatch, repo, tmp_path)
    with pytest.raises(UsageError, match="invalid model repository id"):
        pull(repo_id)
    assert fake.calls == []


def test_unexpected_errors_are_not_hidden(monkeypatch, repo, tmp_path):
    _fake(monkeypatch, repo, tmp_path, fail=KeyError("bug"))
    with pytest.raises(KeyError):
        pull("Qwen/Qwen3.5-35B-A3B", tmp_path / "m")


def test_real_offline_call_with_an_empty_cache(monkeypatch, tmp_path):
    """The real snapshot_download, local files only (no network): nothing cached -> hint."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    with pytest.raises(ModelError) as err:
        pull("Qwen/Qwen3.5-35B-A3B", offline=True)
    assert "not in the local cache" in err.value.message and "--offline" in err.value.hint
