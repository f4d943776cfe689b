"""COCO Captions, Karpathy test split (5000 val2014 images, 5 references each).

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

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmeval.data.sources import image_ref, read_json
from mmeval.data.writers import write_json, write_parquet
from mmeval.errors import DataError
from mmeval.types import Doc, ImageRef
from tasks._common.captioning import CaptionTask, ImageFinder
from tasks._common.cells import string_list


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

    def official_layouts(self):
        return [("dataset_coco.json", self._docs_from_karpathy), ("coco_karpathy_test.json", self._docs_from_lavis)]

    def docs_from_rows(self, rows, data: Path | None) -> list[Doc]:
        """yerevann/coco-karpathy rows; images from an `image` column, else COCO's val2014 files."""
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

    def _docs_from_karpathy(self, path: Path, data: Path) -> list[Doc]:
        """Karpathy's dataset_coco.json: the images of the test split, references the raw sentences."""
        finder = self._finder(data)
        docs = []
        for img in read_json(path, "Karpathy COCO splits")["images"]:
            if img.get("split") != self.split:
                continue
            refs = [str(s["raw"]) for s in img["sentences"]]
            image = finder.path(f"{img.get('filepath', '')}/{img['filename']}".lstrip("/"), img["filename"])
            source = f"coco_caption {img['cocoid']} ({img['filename']})"
            docs.append(self._doc(int(img["cocoid"]), refs, ImageRef(source=source, path=str(image))))
        return self._nonempty(docs, path)

    def _docs_from_lavis(self, path: Path, data: Path) -> list[Doc]:
        """LAVIS's coco_karpathy_test.json: [{"image": "val2014/...jpg", "caption": [...]}]."""
        finder = self._finder(data)
        docs = []
        for entry in read_json(path, "LAVIS Karpathy test annotations"):
            rel = str(entry["image"])
            cocoid = coco_id_from_filename(rel)
            image = finder.path(rel, Path(rel).name)
            docs.append(self._doc(cocoid, string_list(entry["caption"]),
                                  ImageRef(source=f"coco_caption {cocoid} ({Path(rel).name})", path=str(image))))
        return self._nonempty(docs, path)

    def _nonempty(self, docs: list[Doc], path: Path) -> list[Doc]:
        if not docs:
            raise DataError(f"coco_caption: no images of split '{self.split}' in {path}")
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
