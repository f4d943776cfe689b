"""Where a task's rows come from: a local folder of parquet files (the lmms-lab layout), a hub id
(only when online), or official raw files; plus the checks that name what is missing.

Parquet is read through `datasets` with image columns left encoded, so images are decoded lazily
(and in a prefetch thread) rather than all at load time.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mmeval.errors import DataError
from mmeval.types import ImageRef


def task_data_dir(task_name: str, data: str | Path | None, aliases: Sequence[str] = ()) -> Path | None:
    """`--data DIR` may hold one folder per task (`DIR/pope/...`, or one of the task's other folder
    names such as LLaVA-1.5's `DIR/MME/`) or be the task's own folder."""
    if data is None:
        return None
    root = Path(data).expanduser()
    if not root.exists():
        raise DataError(f"--data {root}: no such directory")
    for name in (task_name, *aliases):
        if (root / name).is_dir():
            return root / name
    return root


# Locating files in a data folder and choosing between the hub and a local copy is reading data,
# the same for every benchmark and for any other reader of these layouts: it lives here rather than
# in tasks/_common (which holds what the benchmark protocols share).
def find_path(root: Path, names: Iterable[str], want_dir: bool = False) -> Path | None:
    """The first of `names` found in `root`, else in a folder one level below it (sorted), e.g. an
    official annotation file unpacked into its own subfolder."""
    names = list(names)
    for base in [root] + sorted(q for q in root.iterdir() if q.is_dir()):
        for name in names:
            p = base / name
            if p.is_dir() if want_dir else p.is_file():
                return p
    return None


def has_parquet(root: Path) -> bool:
    """Whether a data folder holds the lmms-lab parquet layout (anywhere below it)."""
    return any(root.rglob("*.parquet"))


def parquet_files(directory: Path, split: str | None = None) -> list[Path]:
    """Parquet files of a split in the lmms-lab layout (`data/<split>-0000x-of-0000y.parquet`)."""
    files = sorted(p for p in directory.rglob("*.parquet") if p.is_file())
    if split is not None:
        chosen = [p for p in files if p.name.startswith(split) or p.parent.name == split]
        if chosen:
            files = chosen
        elif any(p.name.split("-")[0] != p.stem for p in files):
            # The folder names its splits, and none is the one asked for.
            names = sorted({p.name.split("-")[0] for p in files})
            raise DataError(f"{directory}: no parquet files for split '{split}' (found splits: {', '.join(names)})")
    return files


def check_columns(columns: Iterable[str], required: Sequence[str], where: str) -> None:
    missing = [c for c in required if c not in set(columns)]
    if missing:
        raise DataError(f"{where}: missing column(s) {', '.join(missing)} (expected {', '.join(required)})")


def _undecoded(ds):
    """Leave image columns as {'bytes', 'path'} dicts: decoding happens per sample, later."""
    from datasets import Image as HFImage

    for name, feature in ds.features.items():
        if isinstance(feature, HFImage):
            ds = ds.cast_column(name, HFImage(decode=False))
    return ds


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """`datasets` prints a "Generating train split" progress bar for every parquet read and logs at
    WARNING about its cache: the run shows its own progress. Restored on exit."""
    import datasets

    was_disabled, level = datasets.are_progress_bars_disabled(), datasets.logging.get_verbosity()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    try:
        yield
    finally:
        datasets.logging.set_verbosity(level)
        if not was_disabled:
            datasets.enable_progress_bars()


def read_parquet_dir(directory: Path, required: Sequence[str], split: str | None = None):
    """Rows of a local parquet folder as a `datasets.Dataset`, after checking the columns."""
    import datasets

    files = parquet_files(directory, split)
    if not files:
        raise DataError(f"{directory}: no .parquet files found (expected the lmms-lab layout, "
                        f"e.g. data/{split or 'test'}-00000-of-00001.parquet)")
    try:
        with quiet_datasets():
            ds = datasets.load_dataset("parquet", data_files=[str(p) for p in files], split="train")
    except Exception as exc:
        raise DataError(f"{directory}: cannot read parquet files: {type(exc).__name__}: {exc}") from exc
    check_columns(ds.column_names, required, f"{files[0]}")
    return _undecoded(ds)


def read_hub(hub_id: str | Sequence[str], split: str, required: Sequence[str], task_name: str,
             config: str | None = None):
    """Rows of a hub dataset; several ids are tried in order (lmms-eval moved its copies from
    `lmms-lab/*` to `lmms-lab-encoder/*` after 0.7.2: the new id first, the old one as a fallback).
    Offline, a one-line error saying where to put the files instead."""
    ids = [hub_id] if isinstance(hub_id, str) else list(hub_id)
    hint = (f"task {task_name}: no --data given and the dataset {' or '.join(ids)} could not be loaded from the "
            f"hub; download it (huggingface-cli download {ids[0]} --repo-type dataset --local-dir DIR) and pass "
            "--data DIR")
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        raise DataError(hint + " (offline mode is set)")
    import datasets

    failures = []
    for hid in ids:
        try:
            with quiet_datasets():
                ds = datasets.load_dataset(hid, config, split=split)
        except Exception as exc:
            failures.append(f"{hid}: {type(exc).__name__}")
            continue
        check_columns(ds.column_names, required, hid)
        return _undecoded(ds)
    raise DataError(f"{hint} ({'; '.join(failures)})")


def read_lmms_lab(hub_id: str | Sequence[str], task_name: str, data: Path | None, required: Sequence[str], split: str,
                  config: str | None = None):
    """Rows of a task's lmms-lab parquet copy: the hub dataset (its `config`) when no data folder is
    given, else the folder's parquet files (its `<config>/` subfolder when the whole hub repo is there)."""
    if data is None:
        return read_hub(hub_id, split, required, task_name, config=config)
    sub = data / config if config else None
    return read_parquet_dir(sub if sub is not None and sub.is_dir() else data, required, split)


def image_ref(cell: Any, source: str, root: Path | None = None) -> ImageRef:
    """An ImageRef from a parquet image cell ({'bytes','path'}), raw bytes, base64 text or a path."""
    if isinstance(cell, dict):
        if cell.get("bytes"):
            return ImageRef(source=source, data=cell["bytes"])
        if cell.get("path"):
            path = Path(cell["path"])
            return ImageRef(source=source, path=str(root / path if root and not path.is_absolute() else path))
        return ImageRef(source=source)
    if isinstance(cell, (bytes, bytearray)):
        return ImageRef(source=source, data=bytes(cell))
    if isinstance(cell, str):
        if root is not None and (root / cell).exists():
            return ImageRef(source=source, path=str(root / cell))
        try:
            return ImageRef(source=source, data=base64.b64decode(cell, validate=True))
        except Exception:
            return ImageRef(source=source, path=str(root / cell) if root else cell)
    return ImageRef(source=source)


def read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: missing ({what})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc


def read_jsonl(path: Path, what: str) -> list[dict]:
    if not path.is_file():
        raise DataError(f"{path}: missing ({what})")
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{i}: not valid JSON ({exc})") from exc
    return rows
