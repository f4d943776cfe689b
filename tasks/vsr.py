"""VSR (Visual Spatial Reasoning), zero-shot test split: is a caption describing a spatial relation
between two objects in a COCO image true or false? 1,222 captions on 715 images; accuracy.

Source (no lmms-lab copy exists): the official jsonl of cambridgeltl/visual-spatial-reasoning,
zero-shot split `test.jsonl` (found as `test.jsonl`, `zeroshot/test.jsonl` or
`data/splits/zeroshot/test.jsonl` under the data folder; fields image, image_link, caption, label
(1 true / 0 false), relation, subj, obj), plus the images: `images/<image>` (VSR's image zip), the
folder itself, or COCO's `train2017/` / `val2017/` (chosen by image_link); `--task-args
vsr.images=DIR` names another folder. An image path that is absolute or climbs out of those
folders (`../../x`, `/etc/shadow`) fails its sample, naming the path.

Protocol: only `prismatic` (TRI's vsr harness, Cobra's number); LLaVA-1.5 and lmms-eval have no VSR
task. Prompt 'Based on the image, is this statement "True" or "False"? <caption>\\nRespond with
"True" or "False" directly.'; no text is generated: the prediction is the larger next-token
probability of "True" vs "False" (ties go to True, as np.argmax does). Metrics: accuracy (headline),
ROC-AUC and PR-AUC of P(True) normalised over the pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mmeval.data.containment import join_inside, outside_error
from mmeval.data.sources import TEXT, ColumnType, check_record, read_jsonl
from mmeval.errors import DataError
from mmeval.task import Task, take_options
from mmeval.types import Doc, ImageRef, Prediction, Request
from tasks._common.candidates import candidate_choice, candidate_generation, probability_aucs

JSONL_PLACES = ("test.jsonl", "zeroshot/test.jsonl", "splits/zeroshot/test.jsonl", "data/splits/zeroshot/test.jsonl")
CANDIDATES = ("True", "False")
FIELDS = {"image": TEXT, "caption": TEXT,
          "label": ColumnType("0 or 1", frozenset({"integer"}), nullable=False, values=("0", "1"))}


def true_false_prompt(caption: str) -> str:
    return (f'Based on the image, is this statement "True" or "False"? {caption}'
            '\nRespond with "True" or "False" directly.')


class VSR(Task):
    name = "vsr"
    description = "Visual Spatial Reasoning, zero-shot test split (true/false accuracy)"
    protocols = ("prismatic",)
    default_protocol = "prismatic"

    def __init__(self, **options: str) -> None:
        opts = take_options(self.name, options, {"images": None})
        self.images = Path(opts["images"]).expanduser() if "images" in opts else None

    def image_roots(self) -> tuple[Path, ...]:
        return (self.images,) if self.images else ()

    def load_docs(self, data: Path | None) -> list[Doc]:
        if data is None:
            raise DataError("task vsr: no hub copy exists; pass --data DIR holding VSR's zeroshot test.jsonl "
                            "(cambridgeltl/visual-spatial-reasoning) and its images/ folder")
        jsonl = next((data / p for p in JSONL_PLACES if (data / p).is_file()), None)
        if jsonl is None:
            raise DataError(f"vsr: {data} has no zero-shot test.jsonl (looked for {', '.join(JSONL_PLACES)})")
        rows = read_jsonl(jsonl, "VSR zero-shot test split")
        folders = [self.images] if self.images else [data / "images", jsonl.parent / "images", data]
        docs, missing = [], []
        for idx, row in enumerate(rows):
            check_record(row, FIELDS, f"{jsonl}:{idx + 1}")
            name, source = str(row["image"]), f"vsr {idx} ({row['image']})"
            if join_inside(folders[0], name) is None:  # absolute, or climbs out: this sample's error
                where = list(dict.fromkeys(folders))  # data/images is often jsonl.parent/images
                image = ImageRef.failed(source, outside_error(source, str(folders[0] / name), where))
            else:
                path = self._image_path(row, folders, data)
                if path is None:
                    missing.append(name)
                    continue
                image = ImageRef(source=source, path=str(path))
            docs.append(Doc(
                doc_id=str(idx),  # the harness's example_id is the line index
                fields={"caption": str(row["caption"]), "relation": str(row.get("relation", "")),
                        "image": str(row["image"])},
                target=bool(int(row["label"]) == 1),
                images=(image,),
                group_key=str(row["image"])))
        if missing:
            raise DataError(f"vsr: {len(missing)} image(s) not found under {', '.join(str(f) for f in folders)} "
                            f"(e.g. {missing[0]}); put VSR's images in {data / 'images'} "
                            "or pass --task-args images=DIR")
        return docs

    @staticmethod
    def _image_path(row: dict, folders: list[Path], data: Path) -> Path | None:
        name = str(row["image"])
        for folder in folders:
            if (folder / name).is_file():
                return folder / name
        link = row.get("image_link")
        if link:  # e.g. http://images.cocodataset.org/train2017/000000085637.jpg
            coco_split = Path(urlparse(str(link)).path).parent.name
            for p in (join_inside(data, f"{coco_split}/{name}"), join_inside(data, f"images/{coco_split}/{name}")):
                if p is not None and p.is_file():
                    return p
        return None

    def request(self, doc: Doc, protocol: str) -> Request:
        self.check_protocol(protocol)
        return Request(doc_id=doc.doc_id, prompt=true_false_prompt(doc.fields["caption"]), images=doc.images,
                       group_key=doc.group_key, generation=candidate_generation(CANDIDATES))

    def score(self, doc: Doc, prediction: Prediction, protocol: str) -> dict[str, Any]:
        p_true, pred = candidate_choice(prediction, CANDIDATES, f"vsr {doc.doc_id}")
        return {"label": bool(doc.target), "pred": pred, "p_true": p_true,
                "relation": doc.fields.get("relation", ""), "correct": float(pred == bool(doc.target))}

    def aggregate(self, scores: Sequence[dict[str, Any]], protocol: str) -> dict[str, float]:
        self.check_protocol(protocol)
        if not scores:
            return {}
        aucs = probability_aucs([int(bool(s["label"])) for s in scores], [float(s["p_true"]) for s in scores])
        return {"accuracy": 100.0 * sum(float(s["correct"]) for s in scores) / len(scores),
                **{k: 100.0 * v for k, v in aucs.items()}}

    def headline(self, protocol: str) -> str:
        return "accuracy"

    def ci_metrics(self, protocol: str) -> tuple[str, ...]:
        return ("accuracy", "aucroc", "aucpr")

    @staticmethod
    def write_layout(directory: Path, rows: Sequence[dict[str, Any]]) -> Path:
        """Rows: image (file name, e.g. '000000085637.jpg'), caption, label (0/1), relation, picture
        (PIL). Writes `test.jsonl` (the zero-shot split's fields) and `images/`."""
        from mmeval.data.writers import write_jsonl

        directory = Path(directory)
        (directory / "images").mkdir(parents=True, exist_ok=True)
        lines = []
        for r in rows:
            subj, obj = r.get("subj", "object"), r.get("obj", "thing")
            lines.append({"image": r["image"], "image_link": f"http://images.cocodataset.org/train2017/{r['image']}",
                          "caption": r["caption"], "label": int(r["label"]), "relation": r.get("relation", "on"),
                          "subj": subj, "obj": obj, "annotator_id": 0,
                          "vote_true_validator_id": [], "vote_false_validator_id": []})
            r["picture"].save(directory / "images" / r["image"])
        write_jsonl(directory / "test.jsonl", lines)
        return directory
