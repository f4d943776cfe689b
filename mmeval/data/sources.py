"""Where a task's rows come from: a local folder of parquet files (the lmms-lab layout), a hub id
(only when online), or official raw files; plus the checks that name what is missing.

Parquet is read through `datasets` with image columns left encoded, so images are decoded lazily
(and in a prefetch thread) rather than all at load time. Its cache is keyed on the files' content
(sha256), not their modification times: a file rewritten in place is read again. Image paths
from data files stay inside the data folder (`mmeval.data.containment`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmeval.data.containment import join_inside, outside_error
from mmeval.data.provenance import DataSource, file_sha256
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
    if not root.is_dir():
        raise DataError(f"--data {root}: is a file; expected a folder holding one folder per task (DIR/{task_name}/) "
                        f"or {task_name}'s own folder (e.g. --data {root.parent})")
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


@dataclass(frozen=True)
class ColumnType:
    """What a column must hold, checked once for every task's parquet and hub rows (`check_table`).

    `families` are arrow type families ("text", "bytes", "integer", "float", "bool", "list",
    "struct"); a text column stored as bytes is decoded as UTF-8 (refused when it is not UTF-8).
    `nullable`: whether a row may leave it empty. `values`: the allowed values, if fixed (compared
    stripped and lower-cased, as the tasks read them)."""

    expected: str  # for the error message, e.g. "text"
    families: frozenset[str]
    nullable: bool = True
    values: tuple[str, ...] | None = None

    @property
    def decodes_bytes(self) -> bool:
        return "text" in self.families and "bytes" not in self.families


TEXT = ColumnType("text", frozenset({"text"}), nullable=False)
OPTIONAL_TEXT = ColumnType("text (or empty)", frozenset({"text"}))
ID = ColumnType("text or integer ids", frozenset({"text", "integer"}), nullable=False)
INTEGER = ColumnType("integers", frozenset({"integer"}), nullable=False)
LIST = ColumnType("lists", frozenset({"list"}))
TEXT_OR_LIST = ColumnType("text or lists of text", frozenset({"text", "list"}), nullable=False)
IMAGE = ColumnType("images (a struct of bytes and path, bytes, or a path)", frozenset({"struct", "bytes", "text"}))


def one_of(*values: str) -> ColumnType:
    """A text column whose every value is one of `values` (e.g. POPE's categories)."""
    return ColumnType(f"one of {', '.join(values)}", frozenset({"text"}), nullable=False, values=tuple(values))


# The types of the lmms-lab copies' columns, by name (the same name means the same thing in every copy
# read here); a task names a different type for its own columns through `types=` (ScienceQA's integer
# answer, POPE's fixed categories). Required columns not named here are checked for presence only.
COLUMN_TYPES: dict[str, ColumnType] = {
    "question": TEXT, "hint": OPTIONAL_TEXT, "answer": OPTIONAL_TEXT, "category": TEXT, "A": TEXT, "B": TEXT,
    "subject": OPTIONAL_TEXT, "grade": OPTIONAL_TEXT, "filename": TEXT,
    "question_id": ID, "image_id": ID, "id": ID, "imageId": ID, "image_source": ID, "index": INTEGER,
    "cocoid": INTEGER, "image": IMAGE,
    "choices": LIST, "answers": LIST, "capability": TEXT_OR_LIST, "sentences": TEXT_OR_LIST,
    "caption_str": TEXT_OR_LIST, "annotations_captions": TEXT_OR_LIST,
}


def column_types(required: Sequence[str], types: Mapping[str, ColumnType] | None = None) -> dict[str, ColumnType]:
    """The type each required column is checked against: the task's own, else `COLUMN_TYPES`."""
    types = types or {}
    return {c: types.get(c) or COLUMN_TYPES[c] for c in required if c in types or c in COLUMN_TYPES}


def _family(t) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return _family(t.value_type)
    checks = (("text", (pa.types.is_string, pa.types.is_large_string, getattr(pa.types, "is_string_view", None))),
              ("bytes", (pa.types.is_binary, pa.types.is_large_binary, pa.types.is_fixed_size_binary,
                         getattr(pa.types, "is_binary_view", None))),
              ("integer", (pa.types.is_integer,)), ("float", (pa.types.is_floating, pa.types.is_decimal)),
              ("bool", (pa.types.is_boolean,)), ("struct", (pa.types.is_struct,)), ("null", (pa.types.is_null,)),
              ("list", (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list,
                        getattr(pa.types, "is_list_view", None))))
    for family, tests in checks:
        if any(test is not None and test(t) for test in tests):
            return family
    return str(t)


def check_table(schema, read_columns, required: Sequence[str], types: Mapping[str, ColumnType] | None,
                where: str) -> list[str]:
    """Check that one arrow table (a parquet file, or a hub split) has the required columns and that
    they hold their types (`column_types`); a problem is a DataError naming `where`, the column,
    what it holds and what was expected.

    `schema` is the arrow schema; `read_columns(names)` returns a `pyarrow.Table` of those columns
    (read only when values must be looked at). Returns the columns whose bytes are to be decoded as
    UTF-8 text."""
    import pyarrow.compute as pc

    check_columns(schema.names, required, where)
    expected = column_types(required, types)
    to_read, decode = [], []
    for name, ctype in expected.items():
        t = schema.field(name).type
        family = _family(t)
        if family == "null":
            if not ctype.nullable:
                raise DataError(f"{where}: column {name} is empty in every row; expected {ctype.expected}")
            continue
        if family == "bytes" and ctype.decodes_bytes:
            decode.append(name)
        elif family not in ctype.families:
            raise DataError(f"{where}: column {name} holds {family} values ({t}); expected {ctype.expected}")
        if not ctype.nullable or ctype.values is not None or name in decode:
            to_read.append(name)
    table = read_columns(to_read) if to_read else None
    for name in to_read:
        ctype, column = expected[name], table.column(name)
        if not ctype.nullable and column.null_count:
            row = pc.index(pc.is_null(column), True).as_py()
            raise DataError(f"{where}: column {name} is empty in row {row}; expected {ctype.expected}")
        if name in decode:
            for row, cell in enumerate(column.to_pylist()):
                try:
                    if cell is not None:
                        cell.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(f"{where}: column {name} holds bytes that are not UTF-8 text (row {row}: "
                                    f"{exc.reason} at byte {exc.start}); expected {ctype.expected}") from None
        if ctype.values is not None:
            for row, cell in enumerate(column.to_pylist()):
                text = cell.decode("utf-8") if isinstance(cell, bytes) else cell
                if text is not None and str(text).strip().lower() not in ctype.values:
                    raise DataError(f"{where}: column {name} has the value {text!r} in row {row}; "
                                    f"expected {ctype.expected}")
    return decode


def _value_family(value: Any) -> str:
    for family, kinds in (("null", type(None)), ("bool", bool), ("integer", int), ("float", float), ("text", str),
                          ("bytes", (bytes, bytearray)), ("list", (list, tuple)), ("struct", dict)):
        if isinstance(value, kinds):
            return family
    return type(value).__name__


def check_record(row: Mapping[str, Any], types: Mapping[str, ColumnType], where: str) -> None:
    """`check_table` for one record of an official JSON/JSONL layout: every field in `types` is
    there and holds its type (no bytes in JSON, so text must be text); `where` names file:line."""
    if not isinstance(row, Mapping):
        raise DataError(f"{where}: expected an object with fields {', '.join(types)}, got {_value_family(row)}")
    for name, ctype in types.items():
        if name not in row:
            raise DataError(f"{where}: missing field '{name}'")
        value = row[name]
        family = _value_family(value)
        if family == "null" and ctype.nullable:
            continue
        if family not in ctype.families:
            raise DataError(f"{where}: field {name} is {family} {value!r:.40}; expected {ctype.expected}")
        if ctype.values is not None and str(value).strip().lower() not in ctype.values:
            raise DataError(f"{where}: field {name} is {value!r:.40}; expected {ctype.expected}")


def check_parquet_file(path: Path, required: Sequence[str],
                       types: Mapping[str, ColumnType] | None = None) -> tuple[int, list[str]]:
    """A parquet file's rows and the bytes columns to decode, after `check_table`; a file that is
    not parquet (empty, truncated, another format) is one line naming it."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
        schema = meta.schema.to_arrow_schema()
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a file it cannot read
        size = path.stat().st_size
        raise DataError(f"{path}: not a readable parquet file ({size} bytes; {type(exc).__name__}: {exc})") from None
    decode = check_table(schema, lambda cols: pq.read_table(path, columns=cols), required, types, str(path))
    return meta.num_rows, decode


def _decoded(ds, columns: Sequence[str]):
    """Decode bytes columns (already checked to be UTF-8) as text, without a progress bar."""
    if not columns:
        return ds
    import datasets

    with quiet_datasets():
        for name in columns:
            ds = ds.cast_column(name, datasets.Value("string"))
    return ds


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


def read_parquet_dir(directory: Path, required: Sequence[str], split: str | None = None,
                     types: Mapping[str, ColumnType] | None = None):
    """Rows of a local parquet folder as a `datasets.Dataset`, after checking every file's columns
    and their types (`column_types`) and that there are rows at all."""
    import datasets

    files = parquet_files(directory, split)
    if not files:
        raise DataError(f"{directory}: no .parquet files found (expected the lmms-lab layout, "
                        f"e.g. data/{split or 'test'}-00000-of-00001.parquet)")
    n_rows, decode = 0, set()
    for path in files:
        rows, to_decode = check_parquet_file(path, required, types)
        n_rows, decode = n_rows + rows, decode | set(to_decode)
    if n_rows == 0:
        raise DataError(f"{directory}: the parquet files hold no rows ({', '.join(p.name for p in files)})")
    # `datasets` keys its cache on paths and mtimes: a file rewritten in place with its old mtime
    # would be served from the cache with its old rows. A config name from the content keys it on
    # what the files hold (the digests are shared with the run's data fingerprint).
    content = hashlib.sha256("".join(f"{p.name}\0{file_sha256(p)}\n" for p in files).encode()).hexdigest()
    try:
        with quiet_datasets():
            ds = datasets.load_dataset("parquet", data_files=[str(p) for p in files], split="train",
                                       name=f"sha256-{content[:16]}")
    except Exception as exc:
        raise DataError(f"{directory}: cannot read parquet files: {type(exc).__name__}: {exc}") from exc
    return _undecoded(_decoded(ds, sorted(decode)))


def open_hub(hub_id: str | Sequence[str], split: str, required: Sequence[str], task_name: str,
             config: str | None = None, types: Mapping[str, ColumnType] | None = None):
    """Rows of a hub dataset and the id they were loaded from; several ids are tried in order
    (lmms-eval moved its copies from `lmms-lab/*` to `lmms-lab-encoder/*` after 0.7.2: the new id
    first, the old one as a fallback). Offline, a one-line error saying where to put the files instead."""
    ids = hub_ids(hub_id)
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
        table = ds.data.table
        decode = check_table(table.schema, lambda cols, t=table: t.select(cols), required, types, hid)
        return _undecoded(_decoded(ds, decode)), hid
    raise DataError(f"{hint} ({'; '.join(failures)})")


def read_hub(hub_id: str | Sequence[str], split: str, required: Sequence[str], task_name: str,
             config: str | None = None, types: Mapping[str, ColumnType] | None = None):
    """Rows of a hub dataset (see `open_hub`)."""
    return open_hub(hub_id, split, required, task_name, config=config, types=types)[0]


def read_lmms_lab(hub_id: str | Sequence[str], task_name: str, data: Path | None, required: Sequence[str], split: str,
                  config: str | None = None, types: Mapping[str, ColumnType] | None = None):
    """Rows of a task's lmms-lab parquet copy: the hub dataset (its `config`) when no data folder is
    given, else the folder's parquet files (its `<config>/` subfolder when the whole hub repo is there).
    `types`: the task's own column types where they differ from `COLUMN_TYPES`."""
    return read_lmms_lab_with_source(hub_id, task_name, data, required, split, config, types=types)[0]


def read_lmms_lab_with_source(hub_id: str | Sequence[str], task_name: str, data: Path | None,
                              required: Sequence[str], split: str, config: str | None = None,
                              types: Mapping[str, ColumnType] | None = None):
    """`read_lmms_lab`'s rows and their provenance (a `DataSource`: layout `hub` or
    `lmms-lab-parquet`, `questions` = the number of rows; a task that keeps fewer sets its own count).
    Use: `rows, self.data_source = read_lmms_lab_with_source(...)`."""
    if data is None:
        ds, loaded = open_hub(hub_id, split, required, task_name, config=config, types=types)
        return ds, hub_source(hub_id, loaded, split, len(ds))
    sub = data / config if config else None
    directory = sub if sub is not None and sub.is_dir() else data
    ds = read_parquet_dir(directory, required, split, types=types)
    return ds, folder_source("lmms-lab-parquet", dataset_release(hub_id), split, data,
                             parquet_files(directory, split), len(ds))


# -- provenance (see mmeval.data.provenance)
def hub_ids(hub_id: str | Sequence[str]) -> list[str]:
    """A task's hub ids in the order they are tried (`hub_id` may be one id or a tuple)."""
    return [hub_id] if isinstance(hub_id, str) else list(hub_id)


def dataset_release(hub_id: str | Sequence[str]) -> str:
    """The name a hub copy's release is known by: the last id a task lists (its `lmms-lab/*` name,
    which the `lmms-lab-encoder/*` id copies), e.g. "lmms-lab/POPE"."""
    return hub_ids(hub_id)[-1]


def hub_source(hub_id: str | Sequence[str], loaded: str, split: str, questions: int,
               questions_per_split: dict[str, int] | None = None) -> DataSource:
    """Provenance of rows read from the hub: source = the id that loaded, no files."""
    return DataSource(layout="hub", version=dataset_release(hub_id), split=split, source=loaded,
                      questions=questions, questions_per_split=dict(questions_per_split or {}))


def synthetic_version(root: Path) -> str | None:
    """"synthetic@seed<N>" when `root` (a task folder or the folder above it) was written by
    `mmeval synth` (its manifest `synth.json` says so), else None."""
    from mmeval.synth.benchmarks import read_manifest

    root = Path(root)
    for folder, needs_task in ((root, False), (root.parent, True)):
        manifest = read_manifest(folder)
        if isinstance(manifest, dict) and (not needs_task or root.name in (manifest.get("tasks") or {})):
            return f"synthetic@seed{manifest.get('seed', '?')}"
    return None


def folder_source(layout: str, version: str, split: str, root: Path, files: Iterable[str | Path], questions: int,
                  questions_per_split: dict[str, int] | None = None) -> DataSource:
    """Provenance of documents read from a local folder (the files digested); a folder written by
    `mmeval synth` keeps the layout it imitates and gets a `synthetic@seed<N>` version."""
    return DataSource.from_files(layout, synthetic_version(root) or version, split, root, list(files),
                                 questions=questions, questions_per_split=questions_per_split)


def _path_ref(name: str, source: str, root: Path | None) -> ImageRef:
    """An image named by a data file: inside `root`, else an ImageRef that fails naming the path."""
    if root is None:
        return ImageRef.failed(source, f"image path {name} of {source}: the cell has no image bytes and there is "
                                       "no data folder to resolve the path in")
    path = join_inside(root, name)
    return ImageRef(source=source, path=str(path)) if path is not None else \
        ImageRef.failed(source, outside_error(source, str(root / name), [root]))


def image_ref(cell: Any, source: str, root: Path | None = None) -> ImageRef:
    """An ImageRef from a parquet image cell ({'bytes','path'}), raw bytes, base64 text or a path.

    A path from a cell resolves inside `root` (the data folder), never against the working
    directory; one that climbs out, is absolute, or comes without a `root` fails that sample. A
    plain string without `root` is a path the task itself built."""
    if isinstance(cell, dict):
        if cell.get("bytes"):
            return ImageRef(source=source, data=cell["bytes"])
        if cell.get("path"):
            return _path_ref(str(cell["path"]), source, root)
        return ImageRef(source=source)
    if isinstance(cell, (bytes, bytearray)):
        return ImageRef(source=source, data=bytes(cell))
    if isinstance(cell, str):
        inside = join_inside(root, cell) if root is not None else None
        if inside is not None and _exists(inside):
            return ImageRef(source=source, path=str(inside))
        try:
            return ImageRef(source=source, data=base64.b64decode(cell, validate=True))
        except Exception:
            return _path_ref(cell, source, root) if root is not None else ImageRef(source=source, path=cell)
    return ImageRef(source=source)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a cell of base64 text too long to be a file name
        return False


def read_text(path: Path, what: str) -> str:
    """A data file's text; bytes that are not UTF-8 are one line naming the file and the line."""
    if not path.is_file():
        raise DataError(f"{path}: missing ({what})")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}:{line}: not UTF-8 text ({exc.reason} at byte {exc.start}; {what})") from None


def read_json(path: Path, what: str) -> Any:
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc


def read_jsonl(path: Path, what: str) -> list[dict]:
    """The objects of a JSONL file, one per non-empty line; anything else names the file and line."""
    rows = []
    for i, line in enumerate(read_text(path, what).splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{i}: not valid JSON ({exc})") from exc
            if not isinstance(row, dict):
                raise DataError(f"{path}:{i}: expected a JSON object, got {type(row).__name__} ({what})")
            rows.append(row)
    return rows
