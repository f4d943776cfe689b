"""The base of the captioning tasks (coco_caption, nocaps, textcaps): one doc per image, the
reference captions as target, corpus-level pycocoevalcap scoring; and `ImageFinder`, which finds
the image files of an annotation file in the folders a user may have put them in.

Prompts and generation (both greedy): `llava`: "Provide a one-sentence caption for the provided
image." (LLaVA-1.5's short-caption prompt), 128 new tokens; `lmms-eval`: the task's
`lmms_eval_prompt`, 64 new tokens, stop "\\n\\n". See tasks/coco_caption.py for the metrics, Java,
SPICE and the confidence intervals.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from mmeval.data.sources import dataset_release, find_path, folder_source, has_parquet, read_lmms_lab_with_source
from mmeval.errors import DataError
from mmeval.metrics.caption import (
    RESAMPLE_METRICS,
    corpus_scores,
    java_status,
    resample_scores,
    unavailable,
    unigram_precision,
)
from mmeval.task import Task, take_options
from mmeval.types import Doc, GenerationConfig, Prediction, Request
from tasks._common.outputs import record_scores, write_result_file
from tasks._common.prompts import LMMS_EVAL_STOP

LLAVA_CAPTION_PROMPT = "Provide a one-sentence caption for the provided image."
LLAVA_MAX_NEW_TOKENS = 128
LMMS_EVAL_MAX_NEW_TOKENS = 64


class ImageFinder:
    """Resolves image file names against candidate folders (checked once, then remembered)."""

    def __init__(self, task: str, roots: Sequence[Path | None], what: str):
        self.task, self.what = task, what
        self.roots = [r for r in dict.fromkeys(roots) if r is not None and r.is_dir()]
        self.found: Path | None = None

    def path(self, *relative: str) -> Path:
        """The first existing root/relative; once a root has held an image only it is tried."""
        rels = [r for r in relative if r]
        for root in ([self.found] if self.found is not None else self.roots):
            for rel in rels:
                if (root / rel).is_file():
                    self.found = root
                    return root / rel
        if self.found is None:
            where = ", ".join(str(r) for r in self.roots) or "(no folder given)"
            raise DataError(f"{self.task}: image {rels[-1]} not found (looked for {self.what} under {where}; "
                            "pass --data DIR holding them or --task-args images=FOLDER)")
        return self.found / rels[0]  # a missing file: reported per sample when it is read


class CaptionTask(Task):
    """Shared behaviour: one doc per image, target = reference captions, corpus-level scoring."""

    protocols = ("llava", "lmms-eval")
    default_protocol = "llava"
    lmms_eval_prompt = LLAVA_CAPTION_PROMPT
    hub_id: ClassVar[str | tuple[str, ...]]
    split: ClassVar[str]
    PARQUET_COLUMNS: ClassVar[tuple[str, ...]]
    option_names: dict[str, tuple[str, ...] | None] = {"spice": ("auto", "true", "false", "1", "0", "yes", "no"),
                                                       "images": None}

    def __init__(self, **options: str) -> None:
        opts = take_options(self.name, options, self.option_names)
        self.spice = opts.get("spice", "auto") not in ("false", "0", "no")
        self.images_dir = Path(opts["images"]).expanduser() if opts.get("images") else None
        if self.images_dir is not None and not self.images_dir.is_dir():
            raise DataError(f"task {self.name}: images={self.images_dir}: no such directory")
        self.options = opts

    # -- data: the lmms-lab parquet copy (hub or local), else the first official file found
    def load_docs(self, data: Path | None) -> list[Doc]:
        if data is None or has_parquet(data):
            rows, self.data_source = read_lmms_lab_with_source(self.hub_id, self.name, data, self.PARQUET_COLUMNS,
                                                               self.split)
            docs = self.docs_from_rows(rows, data)
            self.data_source.questions = len(docs)  # one doc per image, whatever the rows are
            return docs
        layouts = self.official_layouts()
        for name, read in layouts:
            path = find_path(data, [name])
            if path is not None:
                docs = read(path, data)
                self.data_source = folder_source("official", f"official {path.name}", self.split, data, [path],
                                                 len(docs))
                return docs
        raise DataError(f"{self.name}: {data} has neither parquet files ({dataset_release(self.hub_id)} layout) nor "
                        + " nor ".join(name for name, _ in layouts))

    @abc.abstractmethod
    def docs_from_rows(self, rows, data: Path | None) -> list[Doc]:
        """Docs from the parquet rows (`data`: the local folder, None for the hub copy)."""

    @abc.abstractmethod
    def official_layouts(self) -> list[tuple[str, Callable[[Path, Path], list[Doc]]]]:
        """(annotation file name, reader(file, data folder)) per official layout, in order of preference."""

    # -- protocol
    def request(self, doc: Doc, protocol: str) -> Request:
        self.check_protocol(protocol)
        if protocol == "lmms-eval":
            prompt = self.lmms_eval_prompt
            gen = GenerationConfig(max_new_tokens=LMMS_EVAL_MAX_NEW_TOKENS, stop=LMMS_EVAL_STOP)
        else:
            prompt, gen = LLAVA_CAPTION_PROMPT, GenerationConfig(max_new_tokens=LLAVA_MAX_NEW_TOKENS)
        return Request(doc_id=doc.doc_id, prompt=prompt, images=doc.images, group_key=doc.group_key, generation=gen)

    def score(self, doc: Doc, prediction: Prediction, protocol: str) -> dict[str, Any]:
        refs = list(doc.target or [])
        if not refs:
            raise DataError(f"{self.name} {doc.doc_id}: no reference captions")
        out = {"image_id": doc.fields["image_id"], "prediction": prediction.text, "references": refs,
               "correct": unigram_precision(prediction.text, refs)}
        if doc.fields.get("domain"):
            out["domain"] = doc.fields["domain"]
        return out

    # -- metrics
    @staticmethod
    def _items(scores: Sequence[dict[str, Any]]) -> list[tuple[str, list[str]]]:
        return [(str(s.get("prediction") or ""), [str(r) for r in s["references"]]) for s in scores]

    def _metrics(self, scores: Sequence[dict[str, Any]], resample: bool) -> dict[str, float]:
        items = self._items(scores)
        m = resample_scores(items) if resample else corpus_scores(items, spice=self.spice)
        return {k: 100.0 * v for k, v in m.items()}

    @staticmethod
    def is_resample(scores: Sequence[dict[str, Any]]) -> bool:
        """A bootstrap resample draws some image twice; a real set never holds one image twice."""
        keys = [str(s.get("image_id")) for s in scores]
        return len(set(keys)) < len(keys)

    def aggregate(self, scores: Sequence[dict[str, Any]], protocol: str) -> dict[str, float]:
        self.check_protocol(protocol)
        if not scores:
            return {}
        return self._metrics(scores, self.is_resample(scores))

    def headline(self, protocol: str) -> str:
        return "CIDEr"

    def ci_metrics(self, protocol: str) -> tuple[str, ...]:
        return RESAMPLE_METRICS

    def finalize(self, records: Sequence[Any], out_dir: Path, protocol: str) -> dict[str, Any]:
        results = [{"image_id": s["image_id"], "caption": s.get("prediction", "")}
                   for s in map(record_scores, records) if "image_id" in s]
        notes: dict[str, Any] = {}
        if results:
            path = write_result_file(Path(out_dir) / f"{self.name}_captions.json", results)
            notes["captions_file"] = str(path)
        ok, java = java_status()
        notes["java"] = java if ok else f"not available: {java}"
        skipped = unavailable(self.spice)
        if skipped:
            notes["metrics_skipped"] = skipped
        notes["ci95"] = ("bootstrap intervals only for " + ", ".join(RESAMPLE_METRICS)
                         + " (corpus METEOR/CIDEr/SPICE would rerun the Java scorers on every resample)")
        return notes
