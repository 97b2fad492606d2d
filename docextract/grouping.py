"""Several files as one document: `run --one-document` and `batch --group-by folder|stem`.

A document of several files has its pages in file order (each file's pages in their own order,
renumbered 1..N across the files), and its record names it:
- `source`: a string, as for one file: the first file (`run --one-document`), the folder
  (`--group-by folder`) or the common stem of the files (`--group-by stem`: `scans/stmt` for
  scans/stmt-p1.jpg, scans/stmt-p2.jpg);
- `sources`: every file in page order, each with its own sha256 and page count;
- `sha256`: for one file the file's sha256 as always; for several, the sha256 of the files'
  sha256 hex digests joined by newlines in page order (so it changes when any file, or the
  order, changes).

Grouping (batch):
- folder: the files directly inside a leaf folder (one with no sub-folder holding documents)
  are one document, in natural name order (page2 before page10); files in a folder that has
  sub-folders, and files named on the command line, are each their own document;
- stem: files in one folder whose names end in a page number (NAME-p1.jpg, NAME_p2.png,
  NAME-page3.jpg, NAME_1.jpg; not NAME-1.jpg, which is how numbered documents are often named)
  and share NAME are one document, in page-number order; other files are each their own
  document.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

from .fsutil import display_name

GROUP_BY = ("folder", "stem")
# NAME-p1, NAME_p1, NAME-page1, NAME_page1 or NAME_1; not NAME-1 (samples-s1-001.pdf is a name).
_PAGE_SUFFIX = re.compile(r"^(?P<name>.+?)(?:[-_](?:p|page)|_)(?P<n>[0-9]{1,4})$", re.IGNORECASE)


@dataclass(frozen=True)
class Group:
    """One document made of `files` (page order); `source` is its name in the record."""

    source: str
    files: tuple[str, ...]


def combined_sha256(shas: Sequence[str]) -> str:
    if len(shas) == 1:
        return shas[0]
    return hashlib.sha256("\n".join(shas).encode()).hexdigest()


def _natural(name: str) -> list[Any]:
    return [(0, int(part), part) if part.isdigit() else (1, 0, part.lower())
            for part in re.split(r"([0-9]+)", name) if part]


def page_number(path: str) -> tuple[str, int] | None:
    """(NAME, page) for a file named NAME-pN / NAME_pN / NAME-pageN / NAME_pageN / NAME_N."""
    match = _PAGE_SUFFIX.match(Path(path).stem)
    if match is None:
        return None
    return match["name"], int(match["n"])


def by_stem(inputs: Sequence[str]) -> list[Group]:
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    order: list[tuple[str, str] | str] = []
    for path in inputs:
        found = page_number(path)
        if found is None:
            order.append(path)
            continue
        key = (os.path.dirname(path), found[0])
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append((found[1], path))
    out = []
    for item in order:
        if isinstance(item, str):
            out.append(Group(item, (item,)))
            continue
        files = tuple(p for _, p in sorted(groups[item], key=lambda t: (t[0], _natural(t[1]))))
        name = os.path.join(*item) if item[0] else item[1]
        out.append(Group(name if len(files) > 1 else files[0], files))
    return out


def by_folder(inputs: Sequence[str], given: Sequence[str]) -> list[Group]:
    """`inputs` as collected from the `given` paths; see the module docstring."""
    direct = {os.path.normpath(g) for g in given if not os.path.isdir(g)}
    folders: dict[str, list[str]] = {}
    for path in inputs:
        if os.path.normpath(path) not in direct:
            folders.setdefault(os.path.dirname(path), []).append(path)
    nested = {up for f in folders for up in _parents(f)} & set(folders)
    out: list[Group] = []
    for path in inputs:
        folder = os.path.dirname(path)
        if folder not in folders or folder in nested or path not in folders[folder]:
            out.append(Group(path, (path,)))
        elif path == folders[folder][0]:
            files = tuple(sorted(folders[folder], key=lambda p: _natural(os.path.basename(p))))
            out.append(Group(folder or ".", files))
    return out


def _parents(folder: str) -> list[str]:
    """The folders above `folder`; for a URI (s3://bucket/a/b), those below its bucket."""
    scheme, sep, rest = folder.partition("://")
    if not sep:
        return [str(up) for up in Path(folder).parents]
    return [f"{scheme}://{up}" for up in map(str, PurePosixPath(rest).parents) if up != "."]


def group_inputs(inputs: Sequence[str], by: str | None, given: Sequence[str] = ()) -> list[Group]:
    """Documents from the collected input files: one per file when `by` is None."""
    if by is None:
        return [Group(p, (p,)) for p in inputs]
    if by == "stem":
        return by_stem(inputs)
    return by_folder(inputs, given)


def join_pages(loaded: Sequence[tuple[str, Sequence[Any]]]) -> tuple[list[Any], list[dict[str, Any]], str]:
    """[(file, its pages)] in order -> (the pages numbered 1..N, `sources`, combined sha256)."""
    pages, sources = [], []
    for path, file_pages in loaded:
        sources.append({"source": display_name(path), "sha256": file_pages[0].sha256,
                        "pages": len(file_pages)})
        pages += [dataclasses.replace(p, number=len(pages) + k + 1)
                  for k, p in enumerate(file_pages)]
    return pages, sources, combined_sha256([s["sha256"] for s in sources])


def load_document(files: Sequence[str], opts, stdin=None) -> tuple[list[Any], list[dict[str, Any]], str]:
    """Read every file of one document (InputError names the file that failed)."""
    from . import ingest

    return join_pages([(f, ingest.load(f, stdin=stdin, **opts.ingest_kwargs())) for f in files])


def process_document(files: Sequence[str], target, opts, get_engine, stdin=None,
                     progress=None) -> dict[str, Any]:
    """`run --one-document`: read the files as one document and extract it (see
    pipeline.process_file); input errors raise InputError naming the file."""
    import time

    from . import pipeline
    from .errors import InputError

    t0 = time.monotonic()
    pages, sources, sha = load_document(files, opts, stdin)
    ingest_s = time.monotonic() - t0
    record: dict[str, Any] = {"source": display_name(files[0]), "sha256": sha, "sources": sources}
    engine = get_engine()
    try:
        record.update(pipeline.extract_document(pages, target, engine, unmask=opts.unmask,
                                                retries=opts.retries,
                                                windowing=pipeline.windowing_for(opts, engine),
                                                review_below=opts.review_below, progress=progress))
    except InputError as exc:  # e.g. more pages than the model's context
        raise InputError(f"{display_name(files[0])} and {len(files) - 1} more file(s): "
                         f"{exc.message}", hint=exc.hint) from None
    record["timing"] = {"ingest_s": round(ingest_s, 4), **record["timing"]}
    record["max_pixels"] = opts.ingest_kwargs()["max_pixels"]
    return record


@dataclass(frozen=True)
class Document:
    """A batch document of several files: `inputs` (batch.Input: path, name) in page order."""

    source: str
    inputs: tuple

    @property
    def path(self) -> str:
        return self.source


def batch_documents(inputs: Sequence[Any], by: str | None, given: Sequence[str]) -> list[Any]:
    """batch.Inputs grouped by `by`: each group of several files as a Document, a file alone as
    its Input."""
    if by is None:
        return list(inputs)
    found = {inp.path: inp for inp in inputs}
    out: list[Any] = []
    for group in group_inputs([inp.path for inp in inputs], by, given):
        members = tuple(found[f] for f in group.files)
        out.append(members[0] if len(members) == 1 else Document(group.source, members))
    return out


def load_batch_document(doc: Document, opts) -> tuple[list[str | None], Any]:
    """(each file's sha256 or None, the joined pages or the first InputError) for a Document."""
    from . import ingest, objstore
    from .errors import InputError

    shas: list[str | None] = []
    loaded, failure = [], None
    for inp in doc.inputs:
        if isinstance(inp.path, objstore.ObjectPath):  # one read, into memory
            sha, pages = objstore.read_document(inp.path, opts, render=failure is None)
            shas.append(sha)
            if isinstance(pages, InputError):
                failure = failure or pages
            elif pages is not None:
                loaded.append((inp.path, pages))
            continue
        try:
            shas.append(ingest.file_sha256(inp.path))
        except (OSError, InputError):
            shas.append(None)
        if failure is None:
            try:
                loaded.append((inp.path, ingest.load(inp.path, **opts.ingest_kwargs())))
            except InputError as exc:
                failure = exc
    return shas, failure if failure is not None else join_pages(loaded)
