"""LLaVA-1.5's evaluation bundle (`playground/data/eval/` of haotian-liu/LLaVA, stored at commit
32cebc38; scripts `llava/eval/*.py`, `scripts/convert_*.py`, `scripts/v1_5/eval/*.sh`, identical at
main c121f04): reading its question files, and the one-line error when the annotation file that
LLaVA's own scripts read is not where they expect it.

A question file is JSONL, one `{"question_id", "image", "text", "category"}` per line; `text` is the
prompt as model_vqa_loader.py sends it (before the image token). Docs read from it keep
`llava_question_id` (the value and type of the file's `question_id`) and `llava_prompt` (`text`, as
it is) in their fields: a LLaVA answer line (`question_id`, `prompt`, `text`) belongs to the doc with
that `llava_question_id` (TextVQA repeats ids per image: there the `llava_prompt` decides).
"""

from __future__ import annotations

from pathlib import Path

from mmeval.data.sources import read_jsonl
from mmeval.errors import DataError

LLAVA_BUNDLE = "llava-1.5-eval@32cebc38"  # the bundle's release name in a results file's `data.version`
QUESTION_FIELDS = ("question_id", "image", "text")


def read_llava_questions(path: Path) -> list[dict]:
    """The lines of a LLaVA question file, each checked for question_id, image and text."""
    rows = read_jsonl(path, "LLaVA-1.5 question file")
    for i, row in enumerate(rows, 1):
        missing = [k for k in QUESTION_FIELDS if k not in row]
        if missing:
            raise DataError(f"{path}:{i}: missing field(s) {', '.join(missing)} "
                            f"(a LLaVA question file has {', '.join(QUESTION_FIELDS)}, category)")
    if not rows:
        raise DataError(f"{path}: no questions")
    return rows


def missing_annotation(task: str, question_file: Path, wanted: str, expected: str, script: str) -> DataError:
    """The error for a LLaVA folder holding the question file but not the annotation file."""
    return DataError(f"{task}: {question_file.parent} has LLaVA's {question_file.name} but not {wanted}, "
                     f"which {script} reads from {expected}")


def without_suffix(text: str, suffix: str) -> str:
    """A LLaVA prompt without its instruction line(s): the question as the question file holds it."""
    return text[: -len(suffix)] if suffix and text.endswith(suffix) else text
