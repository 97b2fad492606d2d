"""`batch` inputs on object storage (`s3://bucket/prefix`, `gs://...`, `abfs://...`), listed and
read through pyarrow's file systems (the ones Ray Data reads with; pyarrow comes with
docextract[ray]).

- A URI names one object or a prefix (a folder): every document under a prefix is an input,
  chosen as in a local folder (hidden names skipped; the document suffixes, or --glob).
- The URI's query carries pyarrow's connection options
  (`s3://bucket/in?endpoint_override=HOST:PORT&scheme=http` for a server that is not AWS);
  credentials come from where pyarrow finds them (for S3 the AWS variables, AWS_PROFILE,
  ~/.aws/config and credentials, the machine's role) and are never printed.
- An input's name, in its record (`source`) and in its resume key, is its full URI without the
  query and without any `KEY:SECRET@`: `s3://bucket/in/sub/a.pdf`, the same on every run.
- A document is read into memory, never written to disk: its sha256 and its pages come from the
  same bytes (ingest.load_bytes).
- A URI that cannot be listed (no such bucket or prefix, credentials refused, no connection) is
  an InputError (exit 3) before any work; an object that cannot be read later becomes an error
  record, as a local file does.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import re
from typing import Any, Collection
from urllib.parse import urlsplit, urlunsplit

from .errors import InputError, UsageError

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_HINT = ("check the bucket and prefix, the credentials (for S3: AWS_PROFILE, AWS_ACCESS_KEY_ID "
         "and AWS_SECRET_ACCESS_KEY, ~/.aws), and ?endpoint_override=HOST:PORT for a server "
         "that is not AWS")


class ObjectPath(str):
    """An object's name (its URI without query or credentials: what records show), carrying
    how to open it: `given` (the URI given to batch, with its options) and `key` (the object's
    path in that file system). Pickles as itself, for Ray tasks."""

    given: str
    key: str

    def __new__(cls, name: str, given: str, key: str) -> "ObjectPath":
        self = super().__new__(cls, name)
        self.given, self.key = given, key
        return self

    def __reduce__(self):
        return ObjectPath, (str(self), self.given, self.key)


def is_uri(text: str) -> bool:
    return isinstance(text, str) and _URI.match(text) is not None


def clean(uri: str) -> str:
    """`uri` without its query, fragment and credentials (user:password@)."""
    parts = urlsplit(uri)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _scrub(text: str, uri: str) -> str:
    """A message about `uri` with none of its credentials or options in it."""
    parts = urlsplit(uri)
    text = text.replace(uri, clean(uri))
    for secret in (parts.password, parts.username if parts.password else None):
        if secret:
            text = text.replace(secret, "***")
    return text


def _reason(exc: BaseException, uri: str) -> str:
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    line = re.sub(r"\s*\(Request ID: [^)]*\)", "", line)
    return _scrub(line, uri)[:300]


@functools.lru_cache(maxsize=64)
def _filesystem(given: str) -> tuple[Any, str]:
    """(pyarrow file system, path in it) for a URI given to batch; one per URI and process."""
    name = clean(given)
    try:
        from pyarrow import fs
    except ImportError:
        raise UsageError(f"{name}: reading object storage needs pyarrow",
                         hint="pip install 'docextract[ray]' (or pip install pyarrow)") from None
    try:
        filesystem, path = fs.FileSystem.from_uri(given)
    except OSError as exc:  # e.g. the bucket's region could not be found
        raise InputError(f"{name}: cannot reach it ({_reason(exc, given)})", hint=_HINT) from None
    except (ValueError, TypeError) as exc:  # an unknown scheme or option
        raise UsageError(f"{name}: not a URI pyarrow can open ({_reason(exc, given)})",
                         hint="use s3://, gs:// or abfs:// (Ray Data's file systems), or a "
                              "local path") from None
    return filesystem, path.rstrip("/")


def _walk_order(rel: str) -> tuple:
    """Local folders' order (os.walk, sorted): a folder's files, then its sub-folders."""
    parts = rel.split("/")
    return tuple((1, p) for p in parts[:-1]) + ((0, parts[-1]),)


def collect(given: str, glob: str | None, suffixes: Collection[str]) -> list[ObjectPath]:
    """The documents a URI names: the object itself, or those under the prefix (sorted as a
    local folder's). InputError when it cannot be listed or does not exist."""
    filesystem, root = _filesystem(given)  # first: its error when pyarrow is missing
    from pyarrow import fs

    name = clean(given)
    try:
        info = filesystem.get_file_info(root)
        if info.type == fs.FileType.File:
            return [ObjectPath(name, given, root)]
        if info.type != fs.FileType.Directory:
            raise InputError(f"{name}: not found (no such object or prefix, or no such bucket)",
                             hint=_HINT)
        found = filesystem.get_file_info(fs.FileSelector(root, recursive=True))
    except OSError as exc:
        raise InputError(f"{name}: cannot list it ({_reason(exc, given)})", hint=_HINT) from None
    base = name.rstrip("/")
    out = []
    for item in found:
        rel = item.path[len(root):].lstrip("/") if root else item.path
        if item.type != fs.FileType.File or not rel:
            continue
        parts = rel.split("/")
        if any(p.startswith(".") for p in parts):
            continue
        leaf = parts[-1]
        if glob is not None:
            if not fnmatch.fnmatch(leaf, glob):
                continue
        elif "." not in leaf or "." + leaf.rsplit(".", 1)[1].lower() not in suffixes:
            continue
        out.append((rel, ObjectPath(f"{base}/{rel}", given, item.path)))
    return [p for _, p in sorted(out, key=lambda t: _walk_order(t[0]))]


def read_bytes(path: ObjectPath, limit: int) -> bytes:
    """The object's bytes (in memory); InputError naming it when it cannot be read."""
    filesystem, _ = _filesystem(path.given)
    try:
        with filesystem.open_input_file(path.key) as f:
            size = f.size()
            if size > limit:
                raise InputError(f"{path}: object is {size} bytes, above the limit of {limit}")
            return f.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such object (removed since it was listed?)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({_reason(exc, path.given)})",
                         hint=_HINT) from None


def read_document(path: ObjectPath, opts, render: bool = True) -> tuple[str | None, Any]:
    """(sha256 or None, the pages, or the InputError) for one object; as batch reads a local
    file, but from one read of its bytes. `render=False`: the sha256 only (pages None)."""
    from . import ingest

    try:
        data = read_bytes(path, ingest.MAX_FILE_BYTES)
    except InputError as exc:
        return None, exc
    sha = hashlib.sha256(data).hexdigest()
    if not render:
        return sha, None
    try:
        return sha, ingest.load_bytes(data, path, **opts.ingest_kwargs())
    except InputError as exc:
        return sha, exc
