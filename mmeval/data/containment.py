"""Paths read from data files stay inside the data folder (or an image folder the user named).

A data file names images by path (VSR's `test.jsonl`, the `path` of a parquet image cell, an
official annotation's file name); such a path may climb out (`../../x`) or be absolute
(`/etc/shadow`). The check is on the path as written, normalised without following links: a link
the user put inside the data folder (a shared COCO image folder, say) is followed, a path in a
data file that climbs out of it is not. A path outside is that sample's error, naming the path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from mmeval.types import Doc, ImageRef


def _norm(path: str | Path) -> str:
    return os.path.normpath(os.path.abspath(path))


def is_inside(path: str | Path, roots: Iterable[str | Path]) -> bool:
    """Whether `path`, normalised, is one of `roots` or below one of them."""
    p = _norm(path)
    for root in roots:
        r = _norm(root)
        if p == r or p.startswith(r.rstrip(os.sep) + os.sep):
            return True
    return False


def join_inside(root: Path, name: str) -> Path | None:
    """`root / name` when that stays inside `root` (an absolute `name` or one that climbs out: None)."""
    path = root / name
    return path if not os.path.isabs(name) and is_inside(path, [root]) else None


def outside_error(source: str, path: str, roots: Sequence[str | Path]) -> str:
    where = " or ".join(str(r) for r in roots) if roots else "no data folder (hub rows must carry image bytes)"
    return (f"image path {path} of {source} resolves to {_norm(path)}, outside the data folder {where}: "
            "paths in data files must stay inside it")


def contain_images(docs: Sequence[Doc], roots: Sequence[str | Path]) -> int:
    """Replace each image file of `docs` that lies outside `roots` by a failed ImageRef naming it
    (the sample fails with that message; the others run). Returns how many were replaced."""
    replaced = 0
    for doc in docs:
        if not any(ref.path is not None and ref.data is None and not is_inside(ref.path, roots)
                   for ref in doc.images):
            continue
        images = []
        for ref in doc.images:
            if ref.path is not None and ref.data is None and not is_inside(ref.path, roots):
                ref = ImageRef.failed(ref.source, outside_error(ref.source, ref.path, roots))
                replaced += 1
            images.append(ref)
        doc.images = tuple(images)
    return replaced

