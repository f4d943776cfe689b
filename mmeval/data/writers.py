"""Writers of the real dataset layouts, used by test fixtures and by `mmeval synth`.

They produce the same files the loaders read: lmms-lab parquet (image columns as the `datasets`
Image feature, i.e. a struct of bytes and path) and JSON/JSONL files of the official layouts.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def png_bytes(image) -> bytes:
    """Encode a PIL image as PNG bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def write_parquet(directory: Path, split: str, rows: Sequence[dict[str, Any]],
                  image_columns: Sequence[str] = ("image",)) -> Path:
    """Write rows as `<directory>/data/<split>-00000-of-00001.parquet` (the lmms-lab layout).

    Image cells may be PIL images, PNG/JPEG bytes or None."""
    import datasets

    cells = []
    for row in rows:
        row = dict(row)
        for col in image_columns:
            value = row.get(col)
            if value is not None and not isinstance(value, (bytes, dict)):
                value = png_bytes(value)
            row[col] = {"bytes": value, "path": None} if isinstance(value, bytes) else value
        cells.append(row)
    ds = datasets.Dataset.from_list(cells)
    for col in image_columns:
        if col in ds.column_names:
            ds = ds.cast_column(col, datasets.Image(decode=False))
    out = Path(directory) / "data" / f"{split}-00000-of-00001.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(out))
    return out


def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))
    return path


def write_jsonl(path: Path, rows: Sequence[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
