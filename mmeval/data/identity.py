"""What a task's documents were read from, as a short digest: part of the run fingerprint, so a run
resumes only on the data it started on (other data starts another run folder, or stops with one line).

The digest has a basis, the first that applies:
- `provenance`: the task's `data_source` (layout, release, split, and the size and sha256 of every
  file `load_docs` read);
- `folder`: the task's local data folder: every file's relative name and size, and the sha256 of
  every file that is not an image or an archive (image folders count by name and size);
- `hub`: the hub id and the documents as read, image bytes included;
- `documents`: documents built in memory (no folder, no hub id), image bytes included.
Every basis also covers the documents themselves (ids, fields, targets, and each image file's name
relative to the data folder and its size), which is cheap and catches a task option that reads
another split or other labels from the same files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mmeval.data.provenance import file_sha256
from mmeval.errors import DataError
from mmeval.types import Doc, ImageRef

# Counted by name and size only: hashing every picture of a COCO folder on every run would cost
# minutes, and a replaced picture of the same name and size is not a mistake anyone makes by accident.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
ARCHIVE_SUFFIXES = frozenset({".zip", ".tar", ".gz", ".tgz", ".7z"})


@dataclass(frozen=True)
class DataIdentity:
    """The `data` entry of a task's description in run.json."""

    basis: str  # "provenance" | "folder" | "hub" | "documents"
    digest: str  # 16 hex digits
    files: int  # files covered (0 for hub or in-memory documents)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def folder_entries(root: Path) -> list[list[Any]]:
    """[relative name, size, sha256 or ""] of every file below `root`, sorted; hidden files and
    folders are skipped, linked folders followed once (a folder link is how COCO images are shared)."""
    entries: list[list[Any]] = []
    seen: set[tuple[int, int]] = set()

    def walk(folder: Path) -> None:
        st = folder.stat()
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        try:
            children = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise DataError(f"{folder}: cannot list the data folder ({exc.strerror})") from exc
        for entry in children:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_dir():
                walk(path)
                continue
            rel = path.relative_to(root).as_posix()
            try:
                size = path.stat().st_size
            except OSError:
                entries.append([rel, -1, ""])  # a dangling link: named, so it still counts
                continue
            hashed = path.suffix.lower() not in IMAGE_SUFFIXES | ARCHIVE_SUFFIXES
            try:
                entries.append([rel, size, file_sha256(path) if hashed else ""])
            except OSError as exc:
                raise DataError(f"{path}: cannot read it to fingerprint the data ({exc.strerror})") from exc

    walk(root)
    return entries


def _image_entry(ref: ImageRef, root: Path | None, hash_bytes: bool) -> Any:
    if ref.data is not None:
        return ref.content_key() if hash_bytes else len(ref.data)
    if ref.path is not None:
        path = Path(ref.path)
        name = os.path.relpath(path, root) if root is not None else ref.path
        try:
            return [Path(name).as_posix(), path.stat().st_size]
        except OSError:
            return [Path(name).as_posix(), -1]
    return None


def _stable(obj: Any) -> Any:
    """JSON for what documents' fields may hold, never an object's address."""
    if isinstance(obj, (bytes, bytearray)):
        return hashlib.sha256(obj).hexdigest()
    if isinstance(obj, (set, frozenset)):
        return sorted(map(str, obj))
    if isinstance(obj, Path):
        return obj.as_posix()
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    return type(obj).__name__


def documents_digest(docs: Sequence[Doc], root: Path | None, hash_bytes: bool) -> str:
    """A digest of the documents: ids, fields, targets, and their images (by name and size for
    files; by content when `hash_bytes`, else by length, for images held as bytes)."""
    h = hashlib.sha256()
    for d in docs:
        item = [d.doc_id, d.fields, d.target, [_image_entry(ref, root, hash_bytes) for ref in d.images]]
        try:  # ASCII escapes: text with an invalid code point (a lone surrogate) hashes too
            text = json.dumps(item, sort_keys=True, default=_stable)
        except TypeError:  # a dict with keys of mixed types: the loader's order is deterministic too
            text = json.dumps(item, default=_stable)
        h.update(text.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def data_identity(task: Any, data_dir: Path | None, docs: Sequence[Doc]) -> DataIdentity:
    """The identity of a task's loaded documents (call after `task.load_docs`, before any --limit)."""
    source = getattr(task, "data_source", None)
    docs_part = documents_digest(docs, data_dir, hash_bytes=data_dir is None)
    if source is not None:
        files = [[f.name, f.bytes, f.sha256] for f in source.files]
        payload: Any = {"layout": source.layout, "version": source.version, "split": source.split, "files": files}
        basis, n = "provenance", len(files)
    elif data_dir is not None:
        files = folder_entries(data_dir)
        payload, basis, n = files, "folder", len(files)
    elif getattr(task, "hub_id", None):
        hub = task.hub_id
        payload, basis, n = [hub] if isinstance(hub, str) else list(hub), "hub", 0
    else:
        payload, basis, n = None, "documents", 0
    return DataIdentity(basis=basis, digest=_digest([basis, payload, docs_part]), files=n)
