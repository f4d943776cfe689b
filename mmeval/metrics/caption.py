"""Caption metrics as the COCO caption evaluation computes them (pycocoevalcap, i.e. tylin/coco-caption).

Pipeline, as `COCOEvalCap.evaluate` runs it: every reference and every prediction goes through
Stanford's PTBTokenizer (`-preserveLines -lowerCase`, punctuation tokens dropped), then the
scorers run once over the whole corpus (gts = the references of each image, res = the one
prediction of each image): BLEU-1..4 (`option='closest'`), METEOR 1.5, ROUGE-L, CIDEr-D and,
where it can run, SPICE. Metrics are returned as fractions; tasks scale them by 100.

Java: the tokenizer, METEOR and SPICE are Java programs. Java is detected once; without it no
metric is computed (BLEU/ROUGE/CIDEr would need another tokenisation, i.e. other numbers), and
`unavailable()` says why. SPICE further needs Stanford CoreNLP 3.6.0 jars in pycocoevalcap's
`spice/lib/`; pycocoevalcap downloads them on first use, which this module never triggers: SPICE
is skipped with the reason until they are installed (`python -m pycocoevalcap.spice.get_stanford_models`).

Two deliberate details:
- Caption text is cleaned of characters the Java tokenizer treats as line breaks (\\r, \\u2028,
  ...) before tokenisation. pycocoevalcap only replaces "\\n", and any other break shifts every
  later caption onto the wrong image (silently). Ordinary captions are unaffected.
- Tokenisation is line by line, so it is cached per distinct string; a bootstrap resample
  (the same image drawn twice) is scored in `resample` mode: BLEU and ROUGE-L from cached
  per-image statistics (exactly what pycocoevalcap gives for that multiset of images), without
  METEOR, CIDEr or SPICE, whose corpus statistics would need the Java/CIDEr passes again.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

FULL_METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE")
RESAMPLE_METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L")
JAVA_METRICS = ("METEOR", "SPICE")  # besides the tokenizer, which every metric needs
_LINE_BREAKS = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
SPICE_CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")


# --------------------------------------------------------------------------- environment
@functools.lru_cache(maxsize=1)
def java_status() -> tuple[bool, str]:
    """(available, description): `java` on PATH and `java -version` runs."""
    java = shutil.which("java")
    if java is None:
        return (
            False,
            "no `java` on PATH (the PTB tokenizer, METEOR and SPICE are Java programs; install a JRE, "
            "e.g. apt-get install openjdk-17-jre-headless)",
        )
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"`java -version` failed: {type(exc).__name__}: {exc}"
    if out.returncode != 0:
        return False, f"`java -version` exited with {out.returncode}: {(out.stderr or out.stdout).strip()[:200]}"
    first = (out.stderr or out.stdout).strip().splitlines()
    return True, first[0] if first else java


def _pycocoevalcap_dir() -> Path:
    import pycocoevalcap  # a namespace package in pycocoevalcap 1.2 (no __init__.py, no __file__)

    return Path(list(pycocoevalcap.__path__)[0]).resolve()


def spice_status() -> tuple[bool, str]:
    """(runnable, reason if not): Java, spice-1.0.jar and the CoreNLP 3.6.0 jars already present."""
    ok, why = java_status()
    if not ok:
        return False, why
    try:
        spice_dir = _pycocoevalcap_dir() / "spice"
    except ImportError:
        return False, "pycocoevalcap is not installed"
    if not (spice_dir / "spice-1.0.jar").is_file():
        return False, f"{spice_dir / 'spice-1.0.jar'} is missing"
    missing = [j for j in SPICE_CORENLP_JARS if not (spice_dir / "lib" / j).is_file()]
    if missing:
        return False, (f"Stanford CoreNLP 3.6.0 jars not installed in {spice_dir / 'lib'} ({', '.join(missing)}); "
                       "pycocoevalcap would download them (~400 MB) at run time, which is not done here; install "
                       "them once with `python -m pycocoevalcap.spice.get_stanford_models`")
    if not os.access(spice_dir, os.W_OK):
        return False, f"{spice_dir} is not writable (SPICE writes its temp and cache folders there)"
    return True, ""


def unavailable(spice: bool = True) -> dict[str, str]:
    """Metrics that cannot be computed here, with the reason: {metric: reason}."""
    ok, why = java_status()
    if not ok:
        return {m: f"skipped: {why}" for m in FULL_METRICS}
    out = {}
    if spice:
        ok, why = spice_status()
        if not ok:
            out["SPICE"] = f"skipped: {why}"
    else:
        out["SPICE"] = "skipped: turned off (spice=false)"
    return out


# --------------------------------------------------------------------------- tokenisation
_token_cache: dict[str, str] = {}
_cache_lock = threading.Lock()


def clean_caption(text: str) -> str:
    """The caption as one line (the only change to pycocoevalcap's input; see module doc)."""
    return _LINE_BREAKS.sub(" ", str(text))


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """pycocoevalcap's PTBTokenizer on each text (lower-cased, punctuation tokens dropped).

    Distinct strings are tokenised once per process (tokenisation is line by line)."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    ok, why = java_status()
    if not ok:
        raise RuntimeError(f"caption tokenisation needs Java: {why}")
    with _cache_lock:
        todo = sorted({clean_caption(t) for t in texts} - _token_cache.keys())
    blank = [t for t in todo if not t.strip()]
    todo = [t for t in todo if t.strip()]
    if todo:
        tokens = PTBTokenizer().tokenize({i: [{"caption": t}] for i, t in enumerate(todo)})
        if len(tokens) != len(todo):
            raise RuntimeError(f"PTBTokenizer returned {len(tokens)} lines for {len(todo)} captions")
        with _cache_lock:
            for i, t in enumerate(todo):
                _token_cache[t] = tokens[i][0]
    with _cache_lock:
        for t in blank:
            _token_cache[t] = ""
        return [_token_cache[clean_caption(t)] for t in texts]


# --------------------------------------------------------------------------- scorers
_meteor = None
_meteor_lock = threading.Lock()


def _meteor_scorer():
    """One METEOR JVM per process (it takes several seconds to load its tables)."""
    global _meteor
    with _meteor_lock:
        if _meteor is None or _meteor.meteor_p.poll() is not None:
            from pycocoevalcap.meteor.meteor import Meteor

            _meteor = Meteor()
        return _meteor


def _tokenized(items: Sequence[tuple[str, Sequence[str]]]) -> tuple[list[str], list[list[str]]]:
    flat = [p for p, _ in items] + [r for _, refs in items for r in refs]
    tok = dict(zip(flat, ptb_tokenize(flat), strict=True))
    return [tok[p] for p, _ in items], [[tok[r] for r in refs] for _, refs in items]


def corpus_scores(items: Sequence[tuple[str, Sequence[str]]], spice: bool = True) -> dict[str, float]:
    """COCOEvalCap's metrics over a corpus of (prediction, references) pairs, one per image.

    Returns fractions for every metric that can run here (see `unavailable`); {} without Java."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if not items or not java_status()[0]:
        return {}
    for i, (_, refs) in enumerate(items):
        if not refs:
            raise ValueError(f"caption item {i} has no references")
    preds, refs = _tokenized(items)
    res = {i: [p] for i, p in enumerate(preds)}
    gts = {i: r for i, r in enumerate(refs)}
    out: dict[str, float] = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for n, v in enumerate(bleu, 1):
        out[f"Bleu_{n}"] = float(v)
    out["METEOR"] = float(_meteor_scorer().compute_score(gts, res)[0])
    out["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    out["CIDEr"] = float(Cider().compute_score(gts, res)[0])
    if spice and spice_status()[0]:
        from pycocoevalcap.spice.spice import Spice

        out["SPICE"] = float(Spice().compute_score(gts, res)[0])
    return out


_stat_cache: dict[tuple[str, tuple[str, ...]], tuple] = {}


def resample_scores(items: Sequence[tuple[str, Sequence[str]]]) -> dict[str, float]:
    """BLEU-1..4 and ROUGE-L of a multiset of images (e.g. a bootstrap resample), each drawn item
    counted as one image, from per-image statistics cached by content. Same numbers as
    pycocoevalcap's Bleu/Rouge on that multiset; METEOR, CIDEr and SPICE are not computed."""
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer, cook_refs, cook_test
    from pycocoevalcap.rouge.rouge import Rouge

    if not items or not java_status()[0]:
        return {}
    keys = [(clean_caption(p), tuple(clean_caption(r) for r in refs)) for p, refs in items]
    missing = list(dict.fromkeys(k for k in keys if k not in _stat_cache))
    if missing:
        preds, refs = _tokenized([(p, list(r)) for p, r in missing])
        rouge = Rouge()
        for k, p, r in zip(missing, preds, refs, strict=True):
            crefs = cook_refs(r)
            _stat_cache[k] = (crefs, cook_test(p, crefs), float(rouge.calc_score([p], r)))
    scorer = BleuScorer(n=4)
    for k in keys:
        crefs, ctest, _ = _stat_cache[k]
        scorer.crefs.append(crefs)
        scorer.ctest.append(ctest)
    bleu, _ = scorer.compute_score(option="closest", verbose=0)
    out = {f"Bleu_{n}": float(v) for n, v in enumerate(bleu, 1)}
    out["ROUGE_L"] = float(sum(_stat_cache[k][2] for k in keys) / len(keys))
    return out


# --------------------------------------------------------------------------- per-sample proxy
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def unigram_precision(prediction: str, references: Sequence[str]) -> float:
    """A cheap per-sample score in [0, 1] for paired tests (not a reported metric): the share of
    the prediction's words found in the references (counts clipped by the most any one
    reference has), on a lower-cased alphanumeric split."""
    words = _WORD.findall(str(prediction).lower())
    if not words:
        return 0.0
    have = Counter(words)
    best: Counter = Counter()
    for r in references:
        for w, c in Counter(_WORD.findall(str(r).lower())).items():
            best[w] = max(best[w], c)
    return sum(min(c, best[w]) for w, c in have.items()) / len(words)
