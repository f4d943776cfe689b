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

from pathlib import Path
from typing import Any, Sequence

from mmeval.data.sources import image_ref, read_hub, read_json, read_parquet_dir
from mmeval.data.writers import write_json, write_parquet
from mmeval.errors import DataError
from tasks.coco_caption import CaptionTask, ImageFinder, find_file, has_parquet, string_list
from mmeval.types import Doc, ImageRef

OFFICIAL_FILE = "TextCaps_0.1_val.json"


class TextCaps(CaptionTask):
    name = "textcaps"
    description = "TextCaps validation captioning (pycocoevalcap)"
    hub_id = "lmms-lab/TextCaps"
    split = "val"
    PARQUET_COLUMNS = ("image_id", "image", "caption_str")

    def load_docs(self, data: Path | None) -> list[Doc]:
        if data is None or has_parquet(data):
            rows = read_hub(self.hub_id, self.split, self.PARQUET_COLUMNS, self.name) if data is None else \
                read_parquet_dir(data, self.PARQUET_COLUMNS, self.split)
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
        official = find_file(data, [OFFICIAL_FILE])
        if official is None:
            raise DataError(f"textcaps: {data} has neither parquet files ({self.hub_id} layout) nor {OFFICIAL_FILE}")
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
            for k, c in enumerate(img["captions"]):
                data.append({"image_id": img["image_id"], "image_path": f"train/{img['image_id']}.jpg",
                             "image_name": img["image_id"], "set_name": "val", "caption_id": len(data),
                             "caption_str": c, "caption_tokens": c.lower().split(),
                             "reference_strs": list(img["captions"]),
                             "reference_tokens": [x.lower().split() for x in img["captions"]]})
        return write_json(Path(directory) / OFFICIAL_FILE, {"dataset_type": "val", "dataset_name": "textcaps",
                                                            "data": data})
