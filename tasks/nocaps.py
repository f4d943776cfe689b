"""nocaps validation (4500 Open Images images, 10 references each), overall and per domain
(in-domain 648, near-domain 2938, out-domain 914 images).

Sources (`--data DIR`, or the hub copy):
- lmms-lab parquet (hub `lmms-lab/NoCaps`, split `validation`; columns image_id, image,
  annotations_captions, image_file_name, image_open_images_id, ...). That copy has no domain
  field: the per-domain metrics need `nocaps_val_4500_captions.json` in DIR (matched by image_id)
  or a `domain` column; without either only the overall metrics are reported (and a note says so).
- official files: `nocaps_val_4500_captions.json` (images with `domain`, annotations with
  `caption`) and the images by `file_name` under DIR, `validation/`, `val/` or `images/` (or
  `--task-args images=FOLDER`).

Protocols (both greedy): `llava`: "Provide a one-sentence caption for the provided image.", 128
new tokens; `lmms-eval`: nocaps_val.yaml: the same prompt (its default lmms_eval_specific_kwargs),
64 new tokens, stop "\\n\\n". Scoring: pycocoevalcap over all images (as lmms-eval's
nocaps_aggregation_result), plus each domain scored as its own corpus (`in-domain/CIDEr`, ...), as
the nocaps evaluation server reports them. Headline `CIDEr` (overall). See tasks/coco_caption.py
for Java/SPICE and the confidence intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmeval.data.sources import find_path, image_ref, read_json
from mmeval.data.writers import write_json, write_parquet
from mmeval.errors import DataError
from mmeval.types import Doc, ImageRef
from tasks._common.captioning import CaptionTask, ImageFinder
from tasks._common.cells import string_list
from tasks._common.outputs import record_scores

DOMAINS = ("in-domain", "near-domain", "out-domain")
OFFICIAL_FILE = "nocaps_val_4500_captions.json"


class NoCaps(CaptionTask):
    name = "nocaps"
    description = "nocaps validation captioning, overall and in/near/out-domain (pycocoevalcap)"
    hub_id = ("lmms-lab-encoder/NoCaps", "lmms-lab/NoCaps")
    split = "validation"
    PARQUET_COLUMNS = ("image_id", "image", "annotations_captions")

    def official_layouts(self):
        return [(OFFICIAL_FILE, self._docs_from_official)]

    def docs_from_rows(self, rows, data: Path | None) -> list[Doc]:
        """lmms-lab rows; the domains from a `domain` column or the official file, when present."""
        official = find_path(data, [OFFICIAL_FILE]) if data is not None else None
        domains: dict[int, str] = {}
        if official is not None:
            images = read_json(official, "nocaps val annotations")["images"]
            domains = {int(i["id"]): str(i.get("domain", "")) for i in images}
        docs = []
        for row in rows:
            image_id = int(row["image_id"])
            domain = str(row.get("domain") or domains.get(image_id, "") or "")
            source = f"nocaps {image_id} ({row.get('image_file_name', '')})"
            docs.append(self._doc(image_id, string_list(row["annotations_captions"]), domain,
                                  image_ref(row["image"], source, data)))
        return docs

    def _docs_from_official(self, official: Path, data: Path) -> list[Doc]:
        ann = read_json(official, "nocaps val annotations")
        refs: dict[int, list[str]] = {}
        for a in ann.get("annotations", []):
            refs.setdefault(int(a["image_id"]), []).append(str(a["caption"]))
        finder = ImageFinder(self.name, [self.images_dir, data, data / "validation", data / "val", data / "images",
                                         data / "images" / "validation"], "nocaps validation image files")
        docs = []
        for img in ann["images"]:
            image_id = int(img["id"])
            path = finder.path(str(img["file_name"]))
            docs.append(self._doc(image_id, refs.get(image_id, []), str(img.get("domain", "")),
                                  ImageRef(source=f"nocaps {image_id} ({img['file_name']})", path=str(path))))
        return docs

    def _doc(self, image_id: int, refs: list[str], domain: str, image: ImageRef) -> Doc:
        if not refs:
            raise DataError(f"nocaps: image {image_id} has no reference captions")
        if domain and domain not in DOMAINS:
            raise DataError(f"nocaps: image {image_id} has domain {domain!r} (expected one of {', '.join(DOMAINS)})")
        return Doc(doc_id=str(image_id), fields={"image_id": image_id, "domain": domain}, target=refs,
                   images=(image,), group_key=str(image_id))

    def aggregate(self, scores: Sequence[dict[str, Any]], protocol: str) -> dict[str, float]:
        self.check_protocol(protocol)
        if not scores:
            return {}
        resample = self.is_resample(scores)
        metrics = self._metrics(scores, resample)
        for domain in DOMAINS:
            part = [s for s in scores if s.get("domain") == domain]
            if part:
                metrics.update({f"{domain}/{k}": v for k, v in self._metrics(part, resample).items()})
        return metrics

    def finalize(self, records: Sequence[Any], out_dir: Path, protocol: str) -> dict[str, Any]:
        notes = super().finalize(records, out_dir, protocol)
        if any("image_id" in s and not s.get("domain") for s in map(record_scores, records)):
            notes["domains"] = (f"some images have no domain (the lmms-lab parquet has none; put {OFFICIAL_FILE} "
                                "in the data folder): per-domain metrics cover only images with one")
        return notes

    @staticmethod
    def write_layout(directory: Path, rows: Sequence[dict[str, Any]]) -> Path:
        """lmms-lab/NoCaps parquet (image_id, image (PIL/bytes), annotations_captions, image_file_name, ...)."""
        return write_parquet(directory, NoCaps.split, rows)

    @staticmethod
    def write_official(directory: Path, images: Sequence[dict[str, Any]], image_folder: str = "validation") -> Path:
        """nocaps_val_4500_captions.json; `images` entries: id, file_name, domain, captions, optional `pil`."""
        out_images, anns = [], []
        for img in images:
            if img.get("pil") is not None:
                p = Path(directory) / image_folder / img["file_name"]
                p.parent.mkdir(parents=True, exist_ok=True)
                img["pil"].save(p)
            out_images.append({"id": img["id"], "file_name": img["file_name"], "domain": img["domain"],
                               "open_images_id": Path(img["file_name"]).stem, "height": 10, "width": 12})
            for c in img["captions"]:
                anns.append({"image_id": img["id"], "id": len(anns), "caption": c})
        return write_json(Path(directory) / OFFICIAL_FILE, {"licenses": [], "info": {}, "images": out_images,
                                                             "annotations": anns})
