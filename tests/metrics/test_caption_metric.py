"""Caption metrics: equal to pycocoevalcap's own scorers, and to lmms-eval's COCO caption scoring."""

from __future__ import annotations

import pytest

from mmeval.metrics import caption as cap

needs_java = pytest.mark.usefixtures("java")  # pycocoevalcap's PTB tokenizer and METEOR run on Java

# Hand-checked: image 1 matches a reference exactly; 2 is close; 3 is unrelated; 4 shares words
# but not order; 5 has punctuation/case that the PTB tokenizer must normalise.
ITEMS = [
    ("A man riding a horse on a beach.", ["A man riding a horse on a beach.", "A person on a horse near the ocean.",
                                          "Someone rides a brown horse along the sand."]),
    ("Two dogs playing in the grass", ["Two dogs play in a grassy field.", "A pair of dogs running on grass.",
                                       "Two puppies playing outside in the grass."]),
    ("A plate of spaghetti.", ["A red bus driving down a city street.", "A double decker bus on the road.",
                               "A bus parked next to a curb."]),
    ("grass the on cat a sitting", ["A cat sitting on the grass.", "A small cat sits in green grass.",
                                    "A kitten resting on a lawn."]),
    ("A STOP sign, at the corner!", ["A stop sign at a street corner.", "A red stop sign on the corner of a road.",
                                     "Stop sign near an intersection."]),
]


def _direct(items):
    """pycocoevalcap called directly as COCOEvalCap does: PTBTokenizer, then the scorers."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": r} for r in refs] for i, (_, refs) in enumerate(items)})
    res = tok.tokenize({i: [{"caption": p}] for i, (p, _) in enumerate(items)})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return {"Bleu_1": bleu[0], "Bleu_2": bleu[1], "Bleu_3": bleu[2], "Bleu_4": bleu[3],
            "ROUGE_L": Rouge().compute_score(gts, res)[0], "CIDEr": Cider().compute_score(gts, res)[0]}, gts, res


@needs_java
def test_tokenizer_output_is_ptb():
    toks = cap.ptb_tokenize(["A STOP sign, at the corner!", "it's the U.S. flag", "", "   ", "..."])
    assert toks == ["a stop sign at the corner", "it 's the u.s. flag", "", "", ""]


@needs_java
def test_line_breaks_do_not_shift_captions():
    # pycocoevalcap only replaces "\n": a "\r" or "\u2028" would split a line and move every later
    # caption onto the wrong image.
    toks = cap.ptb_tokenize(["a red\rbus", "a\u2028dog", "last one"])
    assert toks == ["a red bus", "a dog", "last one"]


@needs_java
def test_bleu_cider_rouge_equal_pycocoevalcap_direct():
    ours = cap.corpus_scores(ITEMS, spice=False)
    direct, gts, res = _direct(ITEMS)
    for k, v in direct.items():
        assert ours[k] == pytest.approx(v, abs=1e-12), k
    # the hand-checked shape of the numbers: an exact match scores top, the unrelated one zero
    from pycocoevalcap.cider.cider import Cider

    _, per_image = Cider().compute_score(gts, res)
    assert per_image[0] == max(per_image) and per_image[2] == 0.0
    assert 0 < ours["Bleu_4"] < ours["Bleu_1"] < 1
    assert 0 < ours["METEOR"] < 1
    # corpus-level, not a mean of per-item runs: CIDEr's IDF depends on the whole set
    single = [cap.corpus_scores([it], spice=False)["CIDEr"] for it in ITEMS[:2]]
    assert cap.corpus_scores(ITEMS[:2], spice=False)["CIDEr"] != pytest.approx(sum(single) / 2)


@needs_java
def test_resample_scores_match_pycocoevalcap_on_the_multiset():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.rouge.rouge import Rouge

    draw = [ITEMS[0], ITEMS[0], ITEMS[3], ITEMS[1]]
    ours = cap.resample_scores(draw)
    toks = cap.ptb_tokenize([p for p, _ in draw])
    gts = {i: cap.ptb_tokenize(refs) for i, (_, refs) in enumerate(draw)}
    res = {i: [t] for i, t in enumerate(toks)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    assert [ours[f"Bleu_{n}"] for n in range(1, 5)] == pytest.approx(bleu, abs=1e-12)
    assert ours["ROUGE_L"] == pytest.approx(Rouge().compute_score(gts, res)[0], abs=1e-12)
    assert "CIDEr" not in ours and "METEOR" not in ours


def test_spice_is_skipped_with_a_reason_not_downloaded(monkeypatch, tmp_path):
    monkeypatch.setattr(cap, "_pycocoevalcap_dir", lambda: tmp_path)
    (tmp_path / "spice" / "lib").mkdir(parents=True)
    (tmp_path / "spice" / "spice-1.0.jar").write_bytes(b"")
    if cap.java_status()[0]:
        ok, why = cap.spice_status()
        assert not ok and "stanford-corenlp-3.6.0.jar" in why and "download" in why
        assert set(cap.unavailable()) == {"SPICE"}
    assert "SPICE" in cap.unavailable(spice=False)


def test_without_java_nothing_is_computed(monkeypatch):
    monkeypatch.setattr(cap, "java_status", lambda: (False, "no `java` on PATH"))
    assert cap.corpus_scores(ITEMS) == {}
    assert cap.resample_scores(ITEMS) == {}
    skipped = cap.unavailable()
    assert set(skipped) == set(cap.FULL_METRICS) and all("java" in v for v in skipped.values())


def test_unigram_precision_proxy():
    assert cap.unigram_precision("a man riding a horse", ["A man riding a horse."]) == 1.0
    assert cap.unigram_precision("", ["x"]) == 0.0
    assert cap.unigram_precision("a a a a", ["a b"]) == 0.25  # clipped counts


@needs_java
def test_differential_against_lmms_eval_coco_caption(monkeypatch):
    import tempfile
    from types import SimpleNamespace

    import lmms_eval.tasks.coco_cap.utils as utils

    results = []
    for i, (pred, refs) in enumerate(ITEMS):
        doc = {"question_id": f"COCO_val2014_{100 + i:012d}.jpg", "answer": refs, "id": i}
        results.append(utils.coco_process_result(doc, [pred])["coco_CIDEr"])
    ours = cap.corpus_scores(ITEMS, spice=False)
    # lmms-eval starts a fresh METEOR JVM on every call; share ours (same jar, same arguments)
    monkeypatch.setattr(utils, "Meteor", cap._meteor_scorer)
    with tempfile.TemporaryDirectory() as out:
        args = SimpleNamespace(output_path=out, log_samples_suffix="t", process_with_media=False)
        theirs = {m: utils.coco_aggregation_result(results, m, args)
                  for m in ("Bleu_1", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")}
    for m, v in theirs.items():
        assert ours[m] == pytest.approx(v, abs=1e-9), m
