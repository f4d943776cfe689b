"""TextCaps validation (3166 images with text, 5 references each), captions that read the text.

Sources (`--data DIR`, or the hub copy):
- lmms-lab parquet (hub `lmms-lab/TextCaps`, split `val`; one row per image; columns image_id,
  image, caption_str (the references; lmms-eval's textcaps_process_result uses it as the list of
  answers), reference_strs, image_name, ...). Rows with a single caption string are grouped by
  image_id (references: `reference_strs` where present, else the collected caption_str).
- official files: `TextCaps_0.1_val.json` ({"data": [one entry per caption: image_id, image_path
  "train/<id>.jpg", caption_str, reference_strs]}) and the TextVQA train images under DIR
  (`train_images/<id>.jpg`, or `image_path` relative to DIR, or `--task-args images=FOLDER`).

Protocols (both greedy): `llava`: "Provide a one-sentence caption for the provided image." (the
prompt LLaVA-1.5 trained TextCaps with), 128 new tokens; `lmms-eval`: textcaps_val.yaml: the same
prompt, 64 new tokens, stop "\\n\\n". Scoring: pycocoevalcap over all images (as lmms-eval's
textcaps_aggregation_result). Headline `CIDEr`. See tasks/coco_caption.py for Java/SPICE and the
confidence intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmeval.data.sources import image_ref, read_json
from mmeval.data.writers import write_json, write_parquet
from mmeval.errors import DataError
from mmeval.types import Doc, ImageRef
from tasks._common.captioning import CaptionTask, ImageFinder
from tasks._common.cells import string_list

OFFICIAL_FILE = "TextCaps_0.1_val.json"


class TextCaps(CaptionTask):
    name = "textcaps"
    description = "TextCaps validation captioning (pycocoevalcap)"
    hub_id = ("lmms-lab-encoder/TextCaps", "lmms-lab/TextCaps")
    split = "val"
    PARQUET_COLUMNS = ("image_id", "image", "caption_str")

    def official_layouts(self):
        return [(OFFICIAL_FILE, self._docs_from_official)]

    def docs_from_rows(self, rows, data: Path | None) -> list[Doc]:
        """lmms-lab rows: one per image (caption_str a list), or one per caption, grouped by image_id."""
        order: list[str] = []
        refs: dict[str, list[str]] = {}
        images: dict[str, ImageRef] = {}
        for row in rows:
            image_id = str(row["image_id"])
            if image_id not in refs:
                order.append(image_id)
                refs[image_id] = []
                images[image_id] = image_ref(row["image"], f"textcaps {image_id}", data)
            caps = row["caption_str"]
            if isinstance(caps, str):  # one row per caption: collect, or take the row's references
                ref_strs = string_list(row.get("reference_strs"))
                if ref_strs:
                    refs[image_id] = ref_strs
                else:
                    refs[image_id].append(caps)
            else:
                refs[image_id].extend(string_list(caps))
        return [self._doc(i, refs[i], images[i]) for i in order]

    def _docs_from_official(self, official: Path, data: Path) -> list[Doc]:
        """TextCaps_0.1_val.json: one entry per caption; references from reference_strs, else collected."""
        finder = ImageFinder(self.name, [self.images_dir, data, data / "train_images", data / "images"],
                             "TextVQA/TextCaps train_images files")
        order, refs, collected, paths = [], {}, {}, {}
        for e in read_json(official, "TextCaps val annotations")["data"]:
            image_id = str(e["image_id"])
            if image_id not in refs:
                order.append(image_id)
                refs[image_id] = string_list(e.get("reference_strs"))
                rel = str(e.get("image_path") or f"train/{image_id}.jpg")
                paths[image_id] = finder.path(rel, f"{image_id}.jpg")
                collected[image_id] = []
            if "caption_str" in e:
                collected[image_id].append(str(e["caption_str"]))
        return [self._doc(i, refs[i] or collected[i],
                          ImageRef(source=f"textcaps {i} ({paths[i].name})", path=str(paths[i]))) for i in order]

    def _doc(self, image_id: str, refs: list[str], image: ImageRef) -> Doc:
        if not refs:
            raise DataError(f"textcaps: image {image_id} has no reference captions")
        return Doc(doc_id=image_id, fields={"image_id": image_id}, target=refs, images=(image,), group_key=image_id)

    @staticmethod
    def write_layout(directory: Path, rows: Sequence[dict[str, Any]]) -> Path:
        """lmms-lab/TextCaps parquet (image_id, image (PIL/bytes), caption_str (list), reference_strs, ...)."""
        return write_parquet(directory, TextCaps.split, rows)

    @staticmethod
    def write_official(directory: Path, images: Sequence[dict[str, Any]]) -> Path:
        """TextCaps_0.1_val.json (one entry per caption) with images at train_images/<image_id>.jpg;
        `images` entries: image_id, captions, optional `pil`."""
        data = []
        for img in images:
            if img.get("pil") is not None:
                p = Path(directory) / "train_images" / f"{img['image_id']}.jpg"
                p.parent.mkdir(parents=True, exist_ok=True)
                img["pil"].save(p)
            for c in img["captions"]:
                data.append({"image_id": img["image_id"], "image_path": f"train/{img['image_id']}.jpg",
                             "image_name": img["image_id"], "set_name": "val", "caption_id": len(data),
                             "caption_str": c, "caption_tokens": c.lower().split(),
                             "reference_strs": list(img["captions"]),
                             "reference_tokens": [x.lower().split() for x in img["captions"]]})
        return write_json(Path(directory) / OFFICIAL_FILE, {"dataset_type": "val", "dataset_name": "textcaps",
                                                            "data": data})
