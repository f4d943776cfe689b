"""Reference answers and captions out of a dataset cell, whichever layout it came from."""

from __future__ import annotations

from typing import Any


def answer_texts(cell: Any) -> list[str] | None:
    """Ground-truth answers as strings, from a list of strings or of {'answer': ...} dicts (VQA
    annotations); None when the cell is empty (a test split)."""
    if cell is None:
        return None
    return [str(a["answer"]) if isinstance(a, dict) else str(a) for a in cell]


def string_list(cell: Any) -> list[str]:
    """Reference captions as strings, from one string, a list of strings, or Karpathy's
    {'raw': ...} sentence dicts."""
    if cell is None:
        return []
    if isinstance(cell, str):
        return [cell]
    return [str(c["raw"]) if isinstance(c, dict) and "raw" in c else str(c) for c in cell]
