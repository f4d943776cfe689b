"""Result files: the per-task samples log (appended as samples finish, resumable after any
interruption, kill -9 included), the per-task results JSON (written atomically), the run manifest
and the samples identity records that keep a changed model, protocol, generation config, task
option or data out of an old run, and fingerprints.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from mmeval.errors import RunError
from mmeval.types import SampleRecord


def fingerprint(obj: Any, length: int = 16) -> str:
    """A stable short hash of JSON-able data."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


# Text written into JSON strings with ensure_ascii=False may hold a lone surrogate (an invalid code point
# read from a data file's JSON escape); "backslashreplace" writes it as \udXXX, which inside a JSON string is
# the same escape again: the line stays valid UTF-8 and JSON and reads back as it was.
JSON_SAFE = "backslashreplace"


@contextlib.contextmanager
def atomic_text(path: Path) -> Iterator[TextIO]:
    """A text file whose content replaces `path` when the block ends without an error: written to a
    temporary file in the same folder, fsynced, then renamed over the target, so a reader (or a
    crash) sees the old file or the new one, never half of one. A write that fails (a full disk, a
    read-only folder, a file where the folder should be) is one RunError naming the file; the old
    file is untouched and no temporary file is left."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # a read-only folder, a file where a folder should be: one line naming it
        blocked = isinstance(exc, (FileExistsError, NotADirectoryError))
        raise RunError(f"{path}: cannot write ({'a file is where its folder should be' if blocked else exc.strerror})"
                       ) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors=JSON_SAFE) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):  # a full disk: one line naming the file; the old file is untouched
            raise RunError(f"{path}: cannot write ({exc.strerror or exc})") from exc
        raise


def write_json_atomic(path: Path, obj: Any, indent: int | None = 2, newline: bool = True) -> None:
    """Write JSON atomically (`atomic_text`). `indent=None`: compact (large files such as a
    test-server submission); `newline=False`: no final newline (byte for byte what `json.dump`
    writes, as other harnesses' converters do)."""
    with atomic_text(path) as fh:
        json.dump(obj, fh, indent=indent, sort_keys=False, default=str)
        if newline:
            fh.write("\n")


class SamplesLog:
    """`<task>.samples.jsonl`: one JSON line per finished sample, appended and flushed per batch.

    On open, a torn last line (the process died mid-write) is cut off, so appends continue on a
    clean line boundary. When a doc_id appears twice (an errored sample retried), the last wins.
    """

    def __init__(self, path: Path):
        self.path = path
        self._fh = None

    def read(self) -> dict[str, SampleRecord]:
        records: dict[str, SampleRecord] = {}
        if not self.path.exists():
            return records
        with open(self.path, "rb") as fh:
            data = fh.read()
        good_end = data.rfind(b"\n") + 1
        for n, line in enumerate(data[:good_end].splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = SampleRecord.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:  # not JSON, not UTF-8, not a record
                raise RunError(f"{self.path}:{n}: corrupt sample line ({type(exc).__name__}: {exc}); "
                               "move the file away to start over") from None
            records[rec.doc_id] = rec
        if good_end != len(data):  # torn tail from an interrupted write
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)
        return records

    def append(self, records: Iterable[SampleRecord]) -> None:
        try:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "a", encoding="utf-8", errors=JSON_SAFE)
            for rec in records:
                self._fh.write(json.dumps(rec.to_json(), ensure_ascii=False, default=str) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as exc:  # a full disk, a read-only or vanished folder: one line; what is on disk stays
            self._abandon()
            raise RunError(f"{self.path}: cannot write the samples log ({exc.strerror or exc}); the samples "
                           "written so far are kept: fix that and re-run the same command to resume") from exc

    def _abandon(self) -> None:
        """Close after a failed write; the unwritten rest of the buffer is dropped (a torn last line
        is cut off by the next `read`)."""
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                fh.close()
            except OSError as exc:
                raise RunError(f"{self.path}: cannot write the samples log ({exc.strerror or exc})") from exc


def read_all_samples(run_dir: Path, task: str) -> dict[str, SampleRecord]:
    """Finished samples of a task: the merged file plus any per-rank files of an unmerged run."""
    records: dict[str, SampleRecord] = {}
    for path in [run_dir / f"{task}.samples.jsonl", *sorted(run_dir.glob(f"{task}.samples.rank*.jsonl"))]:
        for doc_id, rec in SamplesLog(path).read().items():
            if doc_id not in records or records[doc_id].error is not None:
                records[doc_id] = rec
    return records


def write_samples(run_dir: Path, task: str, records: dict[str, SampleRecord], order: list[str]) -> None:
    """Replace `<task>.samples.jsonl` by `records` in document order (others after), atomically."""
    position = {d: i for i, d in enumerate(order)}
    ordered = sorted(records.values(), key=lambda r: (position.get(r.doc_id, len(order)), r.doc_id))
    with atomic_text(run_dir / f"{task}.samples.jsonl") as fh:
        for rec in ordered:
            fh.write(json.dumps(rec.to_json(), ensure_ascii=False, default=str) + "\n")


def merge_samples(run_dir: Path, task: str, order: list[str]) -> dict[str, SampleRecord]:
    """Fold per-rank samples files into `<task>.samples.jsonl` (in document order), atomically."""
    rank_files = sorted(run_dir.glob(f"{task}.samples.rank*.jsonl"))
    records = read_all_samples(run_dir, task)
    if not rank_files:
        return records
    write_samples(run_dir, task, records, order)
    for f in rank_files:
        f.unlink()
    return records


# What a task's description (see `mmeval.runner.generation_description`) holds, in the words of a
# message saying which of them changed.
_DESCRIBED = {"protocol": "a different protocol", "task_version": "a different task version",
              "generation": "a different generation config", "task_args": "different task options",
              "data": "different data"}


def what_differs(old: dict[str, Any], new: dict[str, Any]) -> str:
    """'different data (folder 1a2b... then, 3c4d... now)': the first described part that changed."""
    for key, words in _DESCRIBED.items():
        if old.get(key) != new.get(key):
            before, now = old.get(key), new.get(key)
            if key == "data" and isinstance(before, dict) and isinstance(now, dict):
                before, now = f"{before.get('basis')} {before.get('digest')}", f"{now.get('basis')} {now.get('digest')}"
            return f"{words} ({before} then, {now} now)"
    return "a different description"


def _model_words(identity: dict[str, Any]) -> str:
    args = ",".join(f"{k}={v}" for k, v in (identity.get("args") or {}).items())
    return f"{identity.get('name')}" + (f" ({args})" if args else "")


class RunManifest:
    """`run.json`: the model identity a run directory belongs to and each task's fingerprint
    (protocol, generation config, task version). Resuming with anything different is refused."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "run.json"
        try:
            self.data: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}
        except (OSError, ValueError) as exc:
            raise RunError(f"{self.path}: unreadable ({exc}); choose another --run-name or --output") from exc

    def bind_model(self, model_fp: str, identity: dict[str, Any]) -> None:
        old = self.data.get("model_fingerprint")
        if old is not None and old != model_fp:
            raise RunError(
                f"{self.path.parent}: this run directory holds results of a different model or "
                f"checkpoint ({self.data.get('model', {}).get('name')}); choose another --run-name or --output"
            )
        self.data["model_fingerprint"] = model_fp
        self.data["model"] = identity
        self.data.setdefault("tasks", {})

    def check_task(self, task: str, task_fp: str, description: dict[str, Any]) -> None:
        """Refuse a task bound here under another fingerprint, naming what changed."""
        old = self.data.get("tasks", {}).get(task)
        if old is not None and old["fingerprint"] != task_fp:
            raise RunError(f"{self.path.parent}: task {task} was run here with "
                           f"{what_differs(old.get('description') or {}, description)}; "
                           "choose another --run-name or --output")

    def bind_task(self, task: str, task_fp: str, description: dict[str, Any], write: bool = True) -> None:
        self.check_task(task, task_fp, description)
        self.data.setdefault("tasks", {})[task] = {"fingerprint": task_fp, "description": description}
        if write:  # under torchrun only rank 0 writes; every rank checks
            write_json_atomic(self.path, self.data)


class SamplesIdentity:
    """`<task>.samples.identity.json`: the model and task fingerprints a task's samples were answered
    under, written before the first sample. A samples file is resumed only when this record matches
    (run.json alone can be deleted or replaced); one without it (written by an older mmeval, or its
    record removed) is never resumed. The samples lines themselves keep their format."""

    def __init__(self, run_dir: Path, task: str):
        self.run_dir, self.task = run_dir, task
        self.path = run_dir / f"{task}.samples.identity.json"

    def _samples_files(self) -> list[Path]:
        ranks = sorted(self.run_dir.glob(f"{self.task}.samples.rank*.jsonl"))
        files = [self.run_dir / f"{self.task}.samples.jsonl", *ranks]
        return [f for f in files if f.is_file() and f.stat().st_size > 0]

    def record(self, model_fp: str, model: dict[str, Any], task_fp: str, description: dict[str, Any]) -> dict[str, Any]:
        return {"task": self.task, "model_fingerprint": model_fp, "task_fingerprint": task_fp, "model": model,
                "description": description}

    def check(self, expected: dict[str, Any]) -> bool:
        """Raise RunError when the samples here belong to another model or task description; True
        when the record is missing (and there are no samples yet) so it must be written."""
        if self.path.is_file():
            try:
                held = json.loads(self.path.read_text())
            except (OSError, ValueError) as exc:
                raise RunError(f"{self.path}: unreadable ({exc}); move the task's samples away to start over") from exc
            samples = self.run_dir / f"{self.task}.samples.jsonl"
            if held.get("model_fingerprint") != expected["model_fingerprint"]:
                raise RunError(f"{samples}: answered by model {_model_words(held.get('model') or {})}, not "
                               f"{_model_words(expected['model'])}; choose another --run-name or --output")
            if held.get("task_fingerprint") != expected["task_fingerprint"]:
                raise RunError(f"{samples}: answered with "
                               f"{what_differs(held.get('description') or {}, expected['description'])}; "
                               "choose another --run-name or --output")
            return False
        found = self._samples_files()
        if found:
            raise RunError(f"{found[0]}: no record of the model and data it was answered with ({self.path.name} "
                           "is missing: written by an older mmeval, or removed); it is not resumed: move it away "
                           "to start over, or choose another --run-name or --output")
        return True

    def write(self, expected: dict[str, Any]) -> None:
        write_json_atomic(self.path, expected)
