"""Result files: the per-task samples log (appended as samples finish, resumable after any
interruption, kill -9 included), the per-task results JSON (written atomically), the run manifest
that keeps a changed model, protocol or generation config out of an old run, and fingerprints.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

from mmeval.errors import RunError
from mmeval.types import SampleRecord


def fingerprint(obj: Any, length: int = 16) -> str:
    """A stable short hash of JSON-able data."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def write_json_atomic(path: Path, obj: Any, indent: int | None = 2, newline: bool = True) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target: a reader
    (or a crash) sees the old file or the new one, never half of one. `indent=None`: compact (large
    files such as a test-server submission); `newline=False`: no final newline (byte for byte what
    `json.dump` writes, as other harnesses' converters do)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # a read-only folder, a file where a folder should be: one line naming it
        blocked = isinstance(exc, (FileExistsError, NotADirectoryError))
        raise RunError(f"{path}: cannot write ({'a file is where its folder should be' if blocked else exc.strerror})"
                       ) from exc
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=indent, sort_keys=False, default=str)
            if newline:
                fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):  # a full disk: one line naming the file; the old file is untouched
            raise RunError(f"{path}: cannot write ({exc.strerror or exc})") from exc
        raise


# Text written into JSON strings with ensure_ascii=False may hold a lone surrogate (an invalid code point
# read from a data file's JSON escape); "backslashreplace" writes it as \udXXX, which inside a JSON string is
# the same escape again: the line stays valid UTF-8 and JSON and reads back as it was.
JSON_SAFE = "backslashreplace"


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


def merge_samples(run_dir: Path, task: str, order: list[str]) -> dict[str, SampleRecord]:
    """Fold per-rank samples files into `<task>.samples.jsonl` (in document order), atomically."""
    rank_files = sorted(run_dir.glob(f"{task}.samples.rank*.jsonl"))
    records = read_all_samples(run_dir, task)
    if not rank_files:
        return records
    position = {d: i for i, d in enumerate(order)}
    ordered = sorted(records.values(), key=lambda r: (position.get(r.doc_id, len(order)), r.doc_id))
    target = run_dir / f"{task}.samples.jsonl"
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=f".{target.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8", errors=JSON_SAFE) as fh:
        for rec in ordered:
            fh.write(json.dumps(rec.to_json(), ensure_ascii=False, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    for f in rank_files:
        f.unlink()
    return records


class RunManifest:
    """`run.json`: the model identity a run directory belongs to and each task's fingerprint
    (protocol, generation config, task version). Resuming with anything different is refused."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "run.json"
        self.data: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def bind_model(self, model_fp: str, identity: dict[str, Any]) -> None:
        old = self.data.get("model_fingerprint")
        if old is not None and old != model_fp:
            raise RunError(f"{self.path.parent}: this run directory holds results of a different model or "
                           f"checkpoint ({self.data.get('model', {}).get('name')}); choose another --run-name or --output")
        self.data["model_fingerprint"] = model_fp
        self.data["model"] = identity
        self.data.setdefault("tasks", {})

    def bind_task(self, task: str, task_fp: str, description: dict[str, Any], write: bool = True) -> None:
        tasks = self.data.setdefault("tasks", {})
        old = tasks.get(task)
        if old is not None and old["fingerprint"] != task_fp:
            raise RunError(f"{self.path.parent}: task {task} was run here with a different protocol, generation "
                           f"config or task version ({old['description']}); choose another --run-name or --output")
        tasks[task] = {"fingerprint": task_fp, "description": description}
        if write:  # under torchrun only rank 0 writes; every rank checks
            write_json_atomic(self.path, self.data)
