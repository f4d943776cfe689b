"""Other harnesses' output files, written in exactly their formats (field names and order, id types,
separators), for the tests of `mmeval score`.

- LLaVA-1.5 answer lines as `llava/eval/model_vqa_loader.py` writes them (haotian-liu/LLaVA 32cebc38):
  `json.dumps({"question_id", "prompt", "text", "answer_id", "model_id", "metadata"}) + "\\n"`;
- lmms-eval 0.7.3 `--log_samples` lines (`evaluation_tracker.save_results_samples`): `doc_id`, `target`,
  `filtered_resps`, `token_counts`, `doc_hash`, one key per metric, `input`; `ensure_ascii=False`;
- vlm-evaluation's `results+rank-0.json` (`json.dump(..., indent=2)`, keys `str(question_id)`) and its
  POPE `metadata-full.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SHORT_ANSWER = "\nAnswer the question using a single word or phrase."
POPE_LLAVA_OFFSET = {"adversarial": 0, "random": 10_000_000, "popular": 20_000_000}


def write_jsonl(path: Path, rows: list[dict[str, Any]], ensure_ascii: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=ensure_ascii) + "\n" for r in rows))
    return path


def llava_answer(question_id: Any, prompt: str, text: str, n: int = 0) -> dict[str, Any]:
    return {"question_id": question_id, "prompt": prompt, "text": text, "answer_id": f"a{n:021d}",
            "model_id": "llava-v1.5-13b", "metadata": {}}


def lmms_eval_line(doc_id: int, target: str, response: str, metrics: dict[str, Any], prompt: str) -> dict[str, Any]:
    return {"doc_id": doc_id, "target": target, "filtered_resps": response, "token_counts": [None],
            "doc_hash": "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b", **metrics, "input": prompt}


def write_vlm_results(path: Path, records: list[dict[str, Any]], id_field: str = "question_id") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({str(r[id_field]): r for r in records}, indent=2))
    return path


def pope_hash(split: str, question_id: int) -> int:
    """Stands in for vlm-evaluation's `hash(f"{split}-{question_id}")` (a per-process Python hash):
    a negative or positive int that says nothing by itself."""
    import hashlib

    digest = hashlib.sha256(f"{split}-{question_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
