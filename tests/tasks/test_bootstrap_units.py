"""Bootstrap intervals over the papers' units: MME's image pairs within subtasks, MMBench's
circular groups. Hand-worked cases where every unit is alike (so the interval has zero width,
which resampling single questions does not give), and the demo symptom on `mmeval synth`'s MME."""

from __future__ import annotations

from pathlib import Path

from mmeval.bootstrap import bootstrap_ci
from mmeval.metrics.choices import CIRCULAR_BASE
from mmeval.scoring import sample_record, summarize
from mmeval.synth.benchmarks import write_benchmarks
from mmeval.types import Prediction, SampleRecord
from tasks.mmbench import MMBench
from tasks.mme import MME


def records(scores):
    return [SampleRecord(doc_id=str(i), prompt="", prediction="", target="", scores=s) for i, s in enumerate(scores)]


def per_question_ci(task, scores, metric, seed=0):
    """The old interval: single questions resampled."""
    return bootstrap_ci(scores, lambda smp: {metric: task.aggregate(smp, "llava")[metric]}, seed=seed)[metric]


def test_mme_alike_image_pairs_give_zero_width():
    # in each of 3 subtasks, 8 images with one question right and one wrong: acc 50, acc+ 0
    scores = [{"category": cat, "image": f"{cat}/{i}.png", "pred": "yes", "correct": c}
              for cat in ("count", "color", "OCR") for i in range(8) for c in (1.0, 0.0)]
    task = MME()
    out = summarize(task, "llava", records(scores), n_boot=500, seed=0)
    assert out["metrics"]["perception"] == 150.0
    assert out["ci95"]["perception"] == [150.0, 150.0]
    lo, hi = per_question_ci(task, scores, "perception")
    assert hi > 200  # a lone right question of a pair counted as a whole pair right


def test_mme_units_strata_and_clusters():
    scores = [{"category": "count", "image": "count/1.png", "correct": 1.0},
              {"category": "count", "image": "count/1.png", "correct": 0.0},
              {"category": "OCR", "image": "OCR/1.png", "correct": 1.0}]
    units = MME().bootstrap_units(scores, "llava")
    assert list(units.strata) == ["count", "count", "OCR"]
    assert list(units.clusters) == ["count/1.png", "count/1.png", "OCR/1.png"]
    assert units.relabel(scores[0], 7) == {"category": "count", "image": "count/1.png#7", "correct": 1.0}


def test_mmbench_alike_circular_groups_give_zero_width():
    # 10 questions of 4 rotations: the original right, the last rotation wrong -> circular 0, vanilla 100
    scores = [{"index": k * CIRCULAR_BASE + q, "category": "c", "l2_category": None, "correct": float(k < 3)}
              for q in range(10) for k in range(4)]
    task = MMBench()
    out = summarize(task, "llava", records(scores), n_boot=500, seed=0)
    assert out["metrics"]["circular_accuracy"] == 0.0 and out["metrics"]["vanilla_accuracy"] == 100.0
    assert out["ci95"] == {"circular_accuracy": [0.0, 0.0], "vanilla_accuracy": [100.0, 100.0]}
    assert per_question_ci(task, scores, "circular_accuracy")[1] > 0  # rows: a group may miss its wrong one


def test_mmbench_units_renumber_each_drawn_question():
    units = MMBench().bootstrap_units([{"index": 2_000_017}, {"index": 17}], "llava")
    assert units.strata is None and list(units.clusters) == [17, 17]
    assert units.relabel({"index": 2_000_017, "correct": 1.0}, 5) == {"index": 2_000_005, "correct": 1.0}
    assert units.relabel({"index": 17}, 5) == {"index": 5}


def test_mme_interval_on_synth_data_is_around_the_score(tmp_path):
    """The demo's symptom (605 [586, 740]): a model that says yes to every question about half of
    the images. Per subtask acc 75 and acc+ 50, so 625 over the five generated subtasks."""
    write_benchmarks(tmp_path, tasks=("mme",))
    task = MME()
    docs = task.load_docs(Path(tmp_path) / "mme")
    recs = []
    for d in docs:
        odd_image = int(Path(d.fields["image"]).stem) % 2
        text = "Yes" if odd_image else d.target.capitalize()
        recs.append(sample_record(task, "llava", d, task.request(d, "llava"), Prediction(text=text)))
    out = summarize(task, "llava", recs, n_boot=1000, seed=0)
    point = out["metrics"]["perception"]
    lo, hi = out["ci95"]["perception"]
    assert point == 625.0
    assert lo < point < hi
    assert 0.5 < (hi - point) / (point - lo) < 2
    old_lo, old_hi = per_question_ci(task, [r.scores for r in recs], "perception")
    assert (old_hi - point) / (point - old_lo) > 4  # what the demo printed before


def test_pope_questions_drawn_within_their_split():
    from tasks.pope import Pope

    # adversarial: four right; random: one right, one wrong -> random accuracy 0, 50 or 100 with
    # probabilities 1/4, 1/2, 1/4, the mean over splits 50, 75 or 100: the interval is [50, 100]
    yes = {"label": "yes", "pred": "yes", "correct": 1.0}
    scores = [{"category": "adversarial", **yes}] * 4 + [{"category": "random", **yes},
                                                         {"category": "random", "label": "no", "pred": "yes",
                                                          "correct": 0.0}]
    task = Pope()
    assert list(task.bootstrap_units(scores, "llava").strata) == ["adversarial"] * 4 + ["random"] * 2
    out = summarize(task, "llava", records(scores), n_boot=2000, seed=0)
    assert out["metrics"]["accuracy"] == 75.0
    assert out["ci95"]["accuracy"] == [50.0, 100.0]
