"""Captioning tasks (coco_caption, nocaps, textcaps): each source layout -> docs -> requests ->
scores -> corpus metrics; prompts per protocol; DataErrors; the bootstrap and the notes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mmeval.errors import DataError, UnknownNameError
from mmeval.metrics import caption as cap
from mmeval.types import Prediction, SampleRecord
from tasks.coco_caption import CocoCaption
from tasks.nocaps import NoCaps
from tasks.textcaps import TextCaps

needs_java = pytest.mark.usefixtures("java")  # pycocoevalcap's PTB tokenizer and METEOR run on Java

REFS = [
    ["A man riding a horse on a beach.", "A person on a horse near the ocean.", "Someone rides a horse on sand."],
    ["Two dogs playing in the grass.", "A pair of dogs running on grass.", "Two puppies play outside."],
    ["A red bus on a city street.", "A double decker bus on the road.", "A bus parked next to a curb."],
    ["A stop sign at a street corner.", "A red stop sign on a corner.", "Stop sign near an intersection."],
]
PREDS = [
    "A man rides a horse on the beach.",
    "Two dogs play in the grass",
    "A plate of food.",
    "A stop sign, on a corner!",
]
DOMAINS = ["in-domain", "near-domain", "out-domain", "near-domain"]


def _img(i: int):
    from PIL import Image

    return Image.new("RGB", (12, 10), (40 * i % 255, 90, 200 - 30 * i))


def _run(task, data, protocol="llava", preds=PREDS):
    docs = task.load_docs(data)
    requests = [task.request(d, protocol) for d in docs]
    scores = [task.score(d, Prediction(text=p), protocol) for d, p in zip(docs, preds, strict=True)]
    return docs, requests, scores, task.aggregate(scores, protocol)


# --------------------------------------------------------------------------- fixtures per layout
def coco_parquet(root: Path) -> Path:
    rows = [
        {
            "filepath": "val2014",
            "sentids": [5 * i + k for k in range(3)],
            "filename": f"COCO_val2014_{100 + i:012d}.jpg",
            "imgid": i,
            "split": "test",
            "sentences": REFS[i],
            "cocoid": 100 + i,
            "url": f"http://images.cocodataset.org/val2014/COCO_val2014_{100 + i:012d}.jpg",
        }
        for i in range(4)
    ]
    CocoCaption.write_layout(root, rows)
    for i in range(4):  # the parquet has no images: COCO's val2014 folder beside it
        (root / "val2014").mkdir(exist_ok=True)
        _img(i).save(root / "val2014" / f"COCO_val2014_{100 + i:012d}.jpg")
    return root


def coco_official(root: Path) -> Path:
    images = [
        {
            "filepath": "val2014",
            "filename": f"COCO_val2014_{100 + i:012d}.jpg",
            "cocoid": 100 + i,
            "split": "test",
            "sentences": REFS[i],
            "pil": _img(i),
        }
        for i in range(4)
    ]
    images.append(
        {
            "filepath": "train2014",
            "filename": "COCO_train2014_000000000007.jpg",
            "cocoid": 7,
            "split": "train",
            "sentences": ["not in the test split"],
        }
    )
    CocoCaption.write_official(root, images)
    return root


def nocaps_parquet(root: Path, with_official: bool) -> Path:
    rows = [{"image_id": i, "image": _img(i), "annotations_captions": REFS[i], "image_file_name": f"{i:016x}.jpg",
             "image_open_images_id": f"{i:016x}"} for i in range(4)]
    NoCaps.write_layout(root, rows)
    if with_official:  # domains come from the official file
        NoCaps.write_official(root / "ann", [{"id": i, "file_name": f"{i:016x}.jpg", "domain": DOMAINS[i],
                                              "captions": REFS[i]} for i in range(4)])
    return root


def nocaps_official(root: Path) -> Path:
    NoCaps.write_official(root, [{"id": i, "file_name": f"{i:016x}.jpg", "domain": DOMAINS[i], "captions": REFS[i],
                                  "pil": _img(i)} for i in range(4)])
    return root


def textcaps_parquet(root: Path) -> Path:
    rows = [{"image_id": f"{i:016x}", "image": _img(i), "caption_str": REFS[i], "reference_strs": REFS[i],
             "image_name": f"{i:016x}"} for i in range(4)]
    TextCaps.write_layout(root, rows)
    return root


def textcaps_official(root: Path) -> Path:
    TextCaps.write_official(root, [{"image_id": f"{i:016x}", "captions": REFS[i], "pil": _img(i)} for i in range(4)])
    return root


LAYOUTS = {
    "coco_parquet": (CocoCaption, coco_parquet),
    "coco_official": (CocoCaption, coco_official),
    "nocaps_parquet": (NoCaps, lambda r: nocaps_parquet(r, True)),
    "nocaps_official": (NoCaps, nocaps_official),
    "textcaps_parquet": (TextCaps, textcaps_parquet),
    "textcaps_official": (TextCaps, textcaps_official),
}


# --------------------------------------------------------------------------- tests without Java
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_load_docs_each_layout(tmp_path, layout):
    cls, make = LAYOUTS[layout]
    docs = cls().load_docs(make(tmp_path / layout))
    assert len(docs) == 4  # coco_official: the train image is left out
    assert [d.target for d in docs] == REFS
    for d in docs:
        assert d.images[0].load().size == (12, 10)
        assert d.group_key == str(d.fields["image_id"])
    if cls is NoCaps:
        assert [d.fields["domain"] for d in docs] == DOMAINS
    if cls is CocoCaption:
        assert [d.doc_id for d in docs] == ["100", "101", "102", "103"]


def test_prompts_and_generation_per_protocol(tmp_path):
    doc = CocoCaption().load_docs(coco_parquet(tmp_path))[0]
    llava = CocoCaption().request(doc, "llava")
    assert llava.prompt == "Provide a one-sentence caption for the provided image."
    assert llava.generation.max_new_tokens == 128 and llava.generation.stop == ()
    lmms = CocoCaption().request(doc, "lmms-eval")
    assert lmms.prompt == "Describe the image briefly."  # coco_karpathy_test.yaml
    assert lmms.generation.max_new_tokens == 64 and lmms.generation.stop == ("\n\n",)
    for cls, make in ((NoCaps, nocaps_official), (TextCaps, textcaps_official)):
        d = cls().load_docs(make(tmp_path / cls.name))[0]
        r = cls().request(d, "lmms-eval")
        assert r.prompt == "Provide a one-sentence caption for the provided image."
        assert r.generation.max_new_tokens == 64
    with pytest.raises(UnknownNameError):
        CocoCaption().request(doc, "prismatic")


def test_registered_and_options():
    from mmeval.registry import get_task

    assert isinstance(get_task("coco_caption"), CocoCaption)
    assert isinstance(get_task("nocaps", spice="false"), NoCaps)
    assert get_task("textcaps").headline("llava") == "CIDEr"
    with pytest.raises(UnknownNameError):
        get_task("textcaps", split="test")


def test_missing_data_is_one_clear_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="dataset_coco.json"):
        CocoCaption().load_docs(tmp_path / "empty")
    with pytest.raises(DataError, match="nocaps_val_4500_captions.json"):
        NoCaps().load_docs(tmp_path / "empty")
    with pytest.raises(DataError, match="TextCaps_0.1_val.json"):
        TextCaps().load_docs(tmp_path / "empty")
    # the Karpathy parquet without any image folder names what to provide
    root = coco_parquet(tmp_path / "noimg")
    shutil.rmtree(root / "val2014")
    with pytest.raises(DataError, match=r"COCO_val2014_000000000100.jpg not found.*images=FOLDER"):
        CocoCaption().load_docs(root)
    with pytest.raises(DataError, match="yerevann/coco-karpathy"):
        CocoCaption().load_docs(None)  # offline in tests: names the hub id and --data


def test_images_option_points_at_a_coco_folder(tmp_path):
    root = coco_parquet(tmp_path / "a")
    shutil.move(str(root / "val2014"), str(tmp_path / "coco_images"))
    docs = CocoCaption(images=str(tmp_path / "coco_images")).load_docs(root)
    assert docs[0].images[0].path == str(tmp_path / "coco_images" / "COCO_val2014_000000000100.jpg")


def test_nocaps_parquet_without_domains(tmp_path):
    docs = NoCaps().load_docs(nocaps_parquet(tmp_path, with_official=False))
    assert all(d.fields["domain"] == "" for d in docs)
    records = [SampleRecord(d.doc_id, "", p, d.target, NoCaps().score(d, Prediction(text=p), "llava"))
               for d, p in zip(docs, PREDS, strict=True)]
    notes = NoCaps().finalize(records, tmp_path / "run", "llava")
    assert "domains" in notes


def test_textcaps_rows_per_caption_are_grouped(tmp_path):
    rows = [{"image_id": "abc", "image": _img(0), "caption_str": c, "reference_strs": REFS[0]} for c in REFS[0]]
    rows.append({"image_id": "def", "image": _img(1), "caption_str": REFS[1][0], "reference_strs": REFS[1]})
    TextCaps.write_layout(tmp_path, rows)
    docs = TextCaps().load_docs(tmp_path)
    assert [d.doc_id for d in docs] == ["abc", "def"] and docs[0].target == REFS[0] and docs[1].target == REFS[1]


# --------------------------------------------------------------------------- end to end (Java)
@needs_java
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_end_to_end_each_layout(tmp_path, layout):
    cls, make = LAYOUTS[layout]
    task = cls(spice="false")
    docs, requests, scores, metrics = _run(task, make(tmp_path / layout))
    assert [r.doc_id for r in requests] == [d.doc_id for d in docs]
    assert scores[0]["references"] == REFS[0] and scores[0]["prediction"] == PREDS[0]
    assert all(0.0 <= s["correct"] <= 1.0 for s in scores)
    expected = cap.corpus_scores(list(zip(PREDS, REFS, strict=True)), spice=False)
    for k, v in expected.items():
        assert metrics[k] == pytest.approx(100 * v), k  # percentages
    assert {"Bleu_1", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"} <= metrics.keys()
    assert metrics["CIDEr"] > 0
    if cls is NoCaps:
        near = cap.corpus_scores([(PREDS[i], REFS[i]) for i in (1, 3)], spice=False)
        assert metrics["near-domain/CIDEr"] == pytest.approx(100 * near["CIDEr"])  # its own corpus
        assert metrics["out-domain/CIDEr"] == 0.0  # the unrelated caption
        assert {f"{d}/CIDEr" for d in ("in-domain", "near-domain", "out-domain")} <= metrics.keys()


@needs_java
def test_better_captions_score_higher(tmp_path):
    task = CocoCaption(spice="false")
    root = coco_parquet(tmp_path)
    good = _run(task, root, preds=[r[0] for r in REFS])[3]
    bad = _run(task, root, preds=["a photo"] * 4)[3]
    assert good["CIDEr"] > 100 > bad["CIDEr"]
    assert good["Bleu_4"] == pytest.approx(100.0)


@needs_java
def test_summarize_bootstrap_and_finalize(tmp_path):
    from mmeval.scoring import summarize

    task = TextCaps(spice="false")
    docs = task.load_docs(textcaps_parquet(tmp_path / "d"))
    records = [SampleRecord(d.doc_id, "", p, d.target, task.score(d, Prediction(text=p), "llava"))
               for d, p in zip(docs, PREDS, strict=True)]
    summary = summarize(task, "llava", records, n_boot=50, seed=0)
    assert summary["headline"] == "CIDEr" and "CIDEr" in summary["metrics"]
    assert set(summary["ci95"]) == set(cap.RESAMPLE_METRICS)  # no corpus CIDEr bootstrap
    lo, hi = summary["ci95"]["Bleu_1"]
    assert lo <= hi
    notes = task.finalize(records, tmp_path / "run", "llava")
    saved = json.loads(Path(notes["captions_file"]).read_text())
    assert saved[0] == {"image_id": docs[0].doc_id, "caption": PREDS[0]}
    assert "SPICE" in notes["metrics_skipped"]  # spice=false here; without the jars it says why


def test_no_java_means_no_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(cap, "java_status", lambda: (False, "no `java` on PATH"))
    import tasks._common.captioning as cc

    monkeypatch.setattr(cc, "java_status", cap.java_status)
    task = CocoCaption()
    docs, _, scores, metrics = _run(task, coco_parquet(tmp_path))
    assert metrics == {}
    notes = task.finalize(
        [SampleRecord(d.doc_id, "", p, d.target, s) for d, p, s in zip(docs, PREDS, scores, strict=True)],
        tmp_path / "run",
        "llava",
    )
    assert set(notes["metrics_skipped"]) == set(cap.FULL_METRICS)
    assert notes["java"].startswith("not available")


@needs_java
def test_tasks_match_lmms_eval_process_results_and_aggregation(tmp_path, monkeypatch):
    """Each task's aggregate equals lmms-eval's own process_results + aggregation on the same docs."""
    import importlib
    from types import SimpleNamespace

    args = SimpleNamespace(output_path=str(tmp_path / "lmms"), log_samples_suffix="t", process_with_media=False)
    cases = [
        (CocoCaption, coco_parquet, "coco_cap", "coco_process_result_karpathy", "coco_aggregation_result",
         lambda i: {"filename": f"COCO_val2014_{100 + i:012d}.jpg", "imgid": i, "sentences": REFS[i]}, "coco_CIDEr"),
        (NoCaps, nocaps_official, "nocaps", "nocaps_process_result", "nocaps_aggregation_result",
         lambda i: {"image_id": i, "annotations_captions": REFS[i]}, "nocaps_CIDEr"),
        (TextCaps, textcaps_parquet, "textcaps", "textcaps_process_result", "textcaps_aggregation_result",
         lambda i: {"image_id": f"{i:016x}", "caption_str": REFS[i]}, "textcaps_CIDEr"),
    ]
    for cls, make, module, process, aggregation, doc, key in cases:
        utils = importlib.import_module(f"lmms_eval.tasks.{module}.utils")
        monkeypatch.setattr(utils, "Meteor", cap._meteor_scorer)  # one METEOR JVM for the whole test
        ours = _run(cls(spice="false"), make(tmp_path / module), protocol="lmms-eval")[3]
        results = [getattr(utils, process)(doc(i), [PREDS[i]])[key] for i in range(4)]
        for metric in ("Bleu_4", "METEOR", "CIDEr"):
            theirs = getattr(utils, aggregation)(results, metric, args)
            assert ours[metric] == pytest.approx(100 * theirs, abs=1e-7), (module, metric)
