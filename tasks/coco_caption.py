"""COCO Captions, Karpathy test split (5000 val2014 images, 5 references each); also the shared
base of the captioning tasks (nocaps, textcaps).

Sources (`--data DIR`, or the hub copy):
- lmms-eval's `coco_karpathy_test` source, hub `yerevann/coco-karpathy`, split `test` (parquet
  columns filepath, filename, imgid, split, sentences (strings), cocoid, url). It has no images
  (lmms-eval downloads each `url` at run time, which is not done here): images come from an
  `image` column if the parquet has one, else from COCO's val2014 files found under DIR
  (`val2014/`, `images/val2014/`, `<filepath>/`) or under `--task-args images=FOLDER`.
- official files: Karpathy's `dataset_coco.json` (images with split == "test"; references the
  `raw` sentences) or LAVIS's `coco_karpathy_test.json` ([{"image": "val2014/...jpg",
  "caption": [...]}]), with the val2014 images as above.

Protocols (both greedy):
- `llava`: "Provide a one-sentence caption for the provided image." (LLaVA-1.5's short-caption
  response-format prompt, the one its TextCaps/COCO caption training data uses; LLaVA ships no
  caption eval script), 128 new tokens (LLaVA's eval default).
- `lmms-eval`: coco_karpathy_test.yaml: "Describe the image briefly.", 64 new tokens, stop at
  "\\n\\n" (lmms-eval's default `until`).
Scoring (both): pycocoevalcap over the whole set, as COCOEvalCap / lmms-eval's
coco_aggregation_result do (see mmeval.metrics.caption): Bleu_1..4, METEOR, ROUGE_L, CIDEr, and
SPICE where its jars are installed (`--task-args spice=false` to leave it out), x100.
Headline: `CIDEr`.

Confidence intervals: a bootstrap of corpus CIDEr/METEOR would rerun the Java scorers on every
resample, so only BLEU-1..4 and ROUGE-L get intervals (computed from cached per-image
statistics). `finalize` writes `<task>_captions.json` ([{"image_id", "caption"}], the COCO result
format) and notes which metrics were skipped and why.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from mmeval.data.sources import image_ref, read_hub, read_json, read_parquet_dir
from mmeval.data.writers import write_json, write_parquet
from mmeval.errors import DataError
from mmeval.metrics.caption import (RESAMPLE_METRICS, corpus_scores, java_status, resample_scores,
                                    unavailable, unigram_precision)
from mmeval.task import Task, take_options
from mmeval.types import Doc, GenerationConfig, ImageRef, Prediction, Request

LLAVA_CAPTION_PROMPT = "Provide a one-sentence caption for the provided image."
LMMS_EVAL_STOP = ("\n\n",)  # lmms-eval's default `until` when a task's generation_kwargs set none
LLAVA_MAX_NEW_TOKENS = 128
LMMS_EVAL_MAX_NEW_TOKENS = 64


# --------------------------------------------------------------------------- helpers
def find_file(root: Path, names: Iterable[str]) -> Path | None:
    """The first of `names` in `root` or one folder below it."""
    names = list(names)
    for base in [root] + sorted(q for q in root.iterdir() if q.is_dir()):
        for name in names:
            if (base / name).is_file():
                return base / name
    return None


def has_parquet(root: Path) -> bool:
    return any(root.rglob("*.parquet"))


def string_list(cell: Any) -> list[str]:
    if cell is None:
        return []
    if isinstance(cell, str):
        return [cell]
    return [str(c["raw"]) if isinstance(c, dict) and "raw" in c else str(c) for c in cell]


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
    option_names: dict[str, tuple[str, ...] | None] = {"spice": ("auto", "true", "false", "1", "0", "yes", "no"),
                                                       "images": None}

    def __init__(self, **options: str) -> None:
        opts = take_options(self.name, options, self.option_names)
        self.spice = opts.get("spice", "auto") not in ("false", "0", "no")
        self.images_dir = Path(opts["images"]).expanduser() if opts.get("images") else None
        if self.images_dir is not None and not self.images_dir.is_dir():
            raise DataError(f"task {self.name}: images={self.images_dir}: no such directory")
        self.options = opts

    # -- protocol
    def request(self, doc: Doc, protocol: str) -> Request:
        self.check_protocol(protocol)
        if protocol == "lmms-eval":
            prompt, gen = self.lmms_eval_prompt, GenerationConfig(max_new_tokens=LMMS_EVAL_MAX_NEW_TOKENS, stop=LMMS_EVAL_STOP)
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
        results = []
        for r in records:
            scores = r.get("scores") if isinstance(r, dict) else getattr(r, "scores", None)
            if scores and "image_id" in scores:
                results.append({"image_id": scores["image_id"], "caption": scores.get("prediction", "")})
        notes: dict[str, Any] = {}
        if results:
            path = Path(out_dir) / f"{self.name}_captions.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(results))
            notes["captions_file"] = str(path)
        ok, java = java_status()
        notes["java"] = java if ok else f"not available: {java}"
        skipped = unavailable(self.spice)
        if skipped:
            notes["metrics_skipped"] = skipped
        notes["ci95"] = ("bootstrap intervals only for " + ", ".join(RESAMPLE_METRICS)
                         + " (corpus METEOR/CIDEr/SPICE would rerun the Java scorers on every resample)")
        return notes


def coco_id_from_filename(name: str) -> int:
    m = re.search(r"(\d+)\.\w+$", name)
    if not m:
        raise DataError(f"coco_caption: cannot read a COCO image id from file name {name!r}")
    return int(m.group(1))


class CocoCaption(CaptionTask):
    name = "coco_caption"
    description = "COCO Captions, Karpathy test split (BLEU/METEOR/ROUGE-L/CIDEr/SPICE, pycocoevalcap)"
    lmms_eval_prompt = "Describe the image briefly."
    hub_id = "yerevann/coco-karpathy"
    split = "test"
    PARQUET_COLUMNS = ("filename", "sentences", "cocoid")

    def _finder(self, data: Path | None) -> ImageFinder:
        roots = [self.images_dir]
        if data is not None:
            roots += [data, data / "val2014", data / "images", data / "images" / "val2014", data / "coco"]
        return ImageFinder(self.name, roots, "COCO val2014 image files")

    def load_docs(self, data: Path | None) -> list[Doc]:
        if data is None or has_parquet(data):
            rows = read_hub(self.hub_id, self.split, self.PARQUET_COLUMNS, self.name) if data is None else \
                read_parquet_dir(data, self.PARQUET_COLUMNS, self.split)
            finder = self._finder(data)
            docs = []
            for row in rows:
                if "split" in row and row["split"] not in (None, self.split):
                    continue
                cocoid = int(row["cocoid"])
                source = f"coco_caption {cocoid} ({row['filename']})"
                cell = row.get("image")
                if cell:
                    image = image_ref(cell, source, data)
                else:
                    image = ImageRef(source=source, path=str(finder.path(
                        f"{row.get('filepath') or ''}/{row['filename']}".lstrip("/"), row["filename"])))
                docs.append(self._doc(cocoid, string_list(row["sentences"]), image))
            return docs
        karpathy = find_file(data, ["dataset_coco.json"])
        lavis = find_file(data, ["coco_karpathy_test.json"])
        finder = self._finder(data)
        docs = []
        if karpathy is not None:
            for img in read_json(karpathy, "Karpathy COCO splits")["images"]:
                if img.get("split") != self.split:
                    continue
                refs = [str(s["raw"]) for s in img["sentences"]]
                path = finder.path(f"{img.get('filepath', '')}/{img['filename']}".lstrip("/"), img["filename"])
                docs.append(self._doc(int(img["cocoid"]), refs,
                                      ImageRef(source=f"coco_caption {img['cocoid']} ({img['filename']})", path=str(path))))
        elif lavis is not None:
            for entry in read_json(lavis, "LAVIS Karpathy test annotations"):
                rel = str(entry["image"])
                cocoid = coco_id_from_filename(rel)
                path = finder.path(rel, Path(rel).name)
                docs.append(self._doc(cocoid, string_list(entry["caption"]),
                                      ImageRef(source=f"coco_caption {cocoid} ({Path(rel).name})", path=str(path))))
        else:
            raise DataError(f"coco_caption: {data} has neither parquet files ({self.hub_id} layout) nor "
                            "dataset_coco.json (Karpathy splits) nor coco_karpathy_test.json")
        if not docs:
            raise DataError(f"coco_caption: no images of split '{self.split}' in {karpathy or lavis}")
        return docs

    def _doc(self, cocoid: int, refs: list[str], image: ImageRef) -> Doc:
        if not refs:
            raise DataError(f"coco_caption: image {cocoid} has no reference captions")
        return Doc(doc_id=str(cocoid), fields={"image_id": cocoid}, target=refs, images=(image,),
                   group_key=str(cocoid))

    @staticmethod
    def write_layout(directory: Path, rows: Sequence[dict[str, Any]]) -> Path:
        """yerevann/coco-karpathy parquet (columns filepath, sentids, filename, imgid, split,
        sentences, cocoid, url; an optional `image` column as PIL/bytes)."""
        image_cols = ("image",) if any("image" in r for r in rows) else ()
        return write_parquet(directory, CocoCaption.split, rows, image_columns=image_cols)

    @staticmethod
    def write_official(directory: Path, images: Sequence[dict[str, Any]]) -> Path:
        """Karpathy's dataset_coco.json; `images` entries: filepath, filename, cocoid, split,
        sentences (strings), and optionally `pil` (a PIL image written to filepath/filename)."""
        out = []
        for i, img in enumerate(images):
            pil = img.get("pil")
            if pil is not None:
                p = Path(directory) / img["filepath"] / img["filename"]
                p.parent.mkdir(parents=True, exist_ok=True)
                pil.save(p)
            out.append({"filepath": img["filepath"], "filename": img["filename"], "imgid": i, "split": img["split"],
                        "cocoid": img["cocoid"], "sentids": list(range(5 * i, 5 * i + len(img["sentences"]))),
                        "sentences": [{"raw": s, "tokens": s.lower().split(), "imgid": i, "sentid": 5 * i + k}
                                      for k, s in enumerate(img["sentences"])]})
        return write_json(Path(directory) / "dataset_coco.json", {"images": out, "dataset": "coco"})
