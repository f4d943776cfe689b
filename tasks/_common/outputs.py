"""Sample records as `finalize` receives them, and the files it writes into a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmeval.results import write_json_atomic


def record_field(record: Any, key: str) -> Any:
    """A field of a SampleRecord, or of its JSON form (`mmeval score` passes dicts)."""
    return record.get(key) if isinstance(record, dict) else getattr(record, key, None)


def record_scores(record: Any) -> dict[str, Any]:
    """The per-sample score dict of a record ({} when it has none, e.g. a failed sample)."""
    return record_field(record, "scores") or {}


def write_result_file(path: Path, obj: Any, indent: int | None = None) -> Path:
    """Write a JSON output (submission, captions, results file) atomically, byte for byte what
    `json.dump(obj, f)` writes (LLaVA's convert_*_for_submission.py): one line, `", "`/`": "`
    separators, ASCII escapes, no final newline."""
    write_json_atomic(Path(path), obj, indent=indent, newline=False)
    return Path(path)
