"""What a task's documents were read from: the layout, the dataset release, the split, the files
(with sizes and sha256) and the question counts. Recorded in every results file under `data`, so
a number says what it was computed on and a report can tell whether it compares with a paper's.

A task sets `self.data_source` in `load_docs` (see `Task.data_source`); the digests are computed
once per file and cached for the life of the process by (path, inode, size, mtime, ctime): a file
rewritten in place with its old mtime set back still gets a new ctime, so it is hashed again.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB chunks (cached by path, inode, size, mtime and ctime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    digest = _DIGESTS.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        digest = _DIGESTS[key] = h.hexdigest()
    return digest


@dataclass(frozen=True)
class FileDigest:
    name: str  # relative to the data folder
    bytes: int
    sha256: str

    @classmethod
    def of(cls, path: str | Path, root: str | Path | None = None) -> FileDigest:
        p = Path(path)
        name = str(p.relative_to(root)) if root is not None and p.is_relative_to(root) else p.name
        return cls(name=name, bytes=p.stat().st_size, sha256=file_sha256(p))


@dataclass
class DataSource:
    """Provenance of a task's documents (the `data` key of a results file)."""

    layout: str  # "lmms-lab-parquet" | "hub" | "official" | "llava-bundle" | "pope-original" | ...
    version: str  # the dataset release, e.g. "pope-original@e3e3926", "lmms-lab/POPE"
    split: str
    source: str  # the folder or hub id read
    files: list[FileDigest] = field(default_factory=list)
    questions: int = 0
    questions_per_split: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_files(cls, layout: str, version: str, split: str, root: str | Path, files, questions: int = 0,
                   questions_per_split: dict[str, int] | None = None) -> DataSource:
        """Digest the annotation/question files actually read (image folders are not hashed)."""
        root = Path(root)
        return cls(layout=layout, version=version, split=split, source=str(root),
                   files=[FileDigest.of(f, root) for f in sorted({Path(f) for f in files})],
                   questions=questions, questions_per_split=dict(questions_per_split or {}))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
