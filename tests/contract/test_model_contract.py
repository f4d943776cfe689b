"""The Adapter contract, for every registered model built small (`tiny=1` where the adapter has that
option, else its defaults: the mock): one prediction per request, in order; candidate probabilities
in [0, 1] that sum to at most 1 over the asked candidates; a JSON-able identity; the same answers
whether the requests come in one batch or one at a time; an unreadable image fails only its own
request. A new model module is tested here the moment it exists.

The last tests plant broken adapters in a temporary registry and check that the contract catches each.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from typing import Any

import pytest

from mmeval import registry
from mmeval.adapter import Adapter
from mmeval.data.writers import png_bytes
from mmeval.synth.images import draw_scene, random_scene
from mmeval.types import GenerationConfig, ImageError, ImageRef, Prediction, Request
from model_adapters.mock import MockAdapter

PROB_TOL = 1e-5


def model_cases() -> list[str]:
    return list(registry.model_classes())


def build(name: str) -> Adapter:
    cls = registry.model_classes()[name]
    return cls.from_args({"tiny": "1"} if "tiny" in cls.options else {}, device="cpu")


def pictures(n: int = 3) -> list[bytes]:
    rng = random.Random(0)
    return [png_bytes(draw_scene(random_scene(rng))) for _ in range(n)]


def contract_requests(broken_at: int | None = None) -> list[Request]:
    """Fresh requests (fresh image refs): generation with and without stop strings, candidates alone
    and with generation, two requests on one picture; `broken_at`: that request's image is not an image."""
    pics = pictures()
    specs = [
        ("What color is the circle?", 0, GenerationConfig(max_new_tokens=4)),
        ("Describe the picture in a few words, please.", 1, GenerationConfig(max_new_tokens=6, stop=("\n",))),
        ("Is there a square in the image? Answer yes or no.", 2, GenerationConfig(max_new_tokens=0,
                                                                                   candidates=("Yes", "No"))),
        ("The circle is left of the square. True or false?", 0,
         GenerationConfig(max_new_tokens=3, candidates=("True", "False"))),
        ("How many shapes are there?", 1, GenerationConfig(max_new_tokens=2)),
    ]
    requests = []
    for i, (prompt, pic, gen) in enumerate(specs):
        data = b"not an image" if i == broken_at else pics[pic]
        requests.append(Request(doc_id=f"r{i}", prompt=prompt, images=(ImageRef(source=f"contract picture {i}",
                                                                                 data=data),),
                                group_key=f"pic{pic}" if i != broken_at else f"broken{i}", generation=gen))
    return requests


# --------------------------------------------------------------------------- the contract, step by step
def answer(model: Adapter, requests: Sequence[Request], where: str) -> list[Prediction]:
    preds = model.generate(requests)
    assert isinstance(preds, list) and len(preds) == len(requests), \
        f"{where}: {len(preds) if isinstance(preds, list) else type(preds).__name__} predictions for " \
        f"{len(requests)} requests"
    assert all(isinstance(p, Prediction) for p in preds), f"{where}: generate() must return Prediction objects"
    return preds


def check_prediction(req: Request, pred: Prediction, where: str) -> None:
    where = f"{where} request {req.doc_id}"
    assert pred.error is None, f"{where}: answered with an error: {pred.error}"
    assert isinstance(pred.text, str), f"{where}: text is {type(pred.text).__name__}"
    if req.generation.max_new_tokens == 0:
        assert pred.text == "", f"{where}: text {pred.text!r} though no new token was asked for"
    cands = req.generation.candidates
    if not cands:
        return
    probs = pred.candidate_probs
    assert isinstance(probs, dict) and set(probs) == set(cands), \
        f"{where}: candidate probabilities {probs!r} for the candidates {cands}"
    bad = {c: p for c, p in probs.items() if not (isinstance(p, float) and math.isfinite(p) and 0.0 <= p <= 1.0)}
    assert not bad, f"{where}: candidate probabilities outside [0, 1]: {bad}"
    assert sum(probs.values()) <= 1.0 + PROB_TOL, f"{where}: candidate probabilities sum to {sum(probs.values())} > 1"


def check_identity(model: Adapter, where: str) -> dict[str, Any]:
    ident = model.identity()
    try:
        text = json.dumps(ident)  # no default=str: the results file must hold it as it is
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{where}: identity() is not JSON ({exc})") from exc
    assert json.loads(text) == ident, f"{where}: identity() does not survive a JSON round trip"
    assert ident.get("name") == model.name, f"{where}: identity()['name'] is {ident.get('name')!r}"
    return ident


def check_same_answers(batched: Sequence[Prediction], single: Sequence[Prediction], requests: Sequence[Request],
                       where: str) -> None:
    for req, a, b in zip(requests, batched, single, strict=True):
        at = f"{where} request {req.doc_id}"
        assert (a.error is None) == (b.error is None), f"{at}: errors differ ({a.error!r} / {b.error!r})"
        assert a.text == b.text, f"{at}: in a batch {a.text!r}, alone {b.text!r}"
        pa, pb = a.candidate_probs or {}, b.candidate_probs or {}
        assert set(pa) == set(pb), f"{at}: candidates {sorted(pa)} in a batch, {sorted(pb)} alone"
        for c in pa:
            assert abs(pa[c] - pb[c]) <= PROB_TOL, f"{at}: P({c}) is {pa[c]} in a batch, {pb[c]} alone"


def run_contract(name: str) -> None:
    where = f"model {name}"
    model = build(name)
    try:
        check_identity(model, where)
        requests = contract_requests()
        batched = answer(model, requests, where)
        for req, pred in zip(requests, batched, strict=True):
            check_prediction(req, pred, where)
        single = [answer(model, [r], where)[0] for r in contract_requests()]
        check_same_answers(batched, single, requests, where)
        broken = contract_requests(broken_at=1)
        mixed = answer(model, broken, where)
        assert mixed[1].error, f"{where}: request r1 with an unreadable image was answered ({mixed[1]!r})"
        others = [i for i in range(len(broken)) if i != 1]
        for i in others:
            check_prediction(broken[i], mixed[i], f"{where} (batch with an unreadable image)")
        check_same_answers([mixed[i] for i in others], [batched[i] for i in others], [broken[i] for i in others],
                           f"{where} (batch with an unreadable image)")
    finally:
        model.close()


# --------------------------------------------------------------------------- every model
@pytest.mark.parametrize("name", model_cases())
def test_model_contract(name):
    run_contract(name)


def test_every_builtin_model_is_covered():
    import pkgutil

    import model_adapters

    modules = {m.name for m in pkgutil.iter_modules(model_adapters.__path__) if not m.name.startswith("_")}
    assert modules <= {registry.model_classes()[n].__module__.split(".")[-1] for n in model_cases()}


# --------------------------------------------------------------------------- the contract catches broken adapters
class Good(MockAdapter):
    name = "good"


class DropsOne(MockAdapter):
    name = "drops_one"

    def generate(self, requests):
        return super().generate(requests)[:-1] if len(requests) > 1 else super().generate(requests)


class RemapsProbabilities(MockAdapter):
    """The mock's candidate probabilities (which sum to 0.5) passed through `remap`."""

    remap = staticmethod(float)

    def generate(self, requests):
        preds = super().generate(requests)
        for p in preds:
            if p.candidate_probs:
                p.candidate_probs = {c: self.remap(v) for c, v in p.candidate_probs.items()}
        return preds


class ProbabilitiesAboveOne(RemapsProbabilities):
    name = "probabilities_above_one"
    remap = staticmethod(lambda v: 4 * v)


class LogitsNotProbabilities(RemapsProbabilities):
    name = "logits_not_probabilities"
    remap = staticmethod(math.log)


class IdentityNotJson(MockAdapter):
    name = "identity_not_json"

    def identity(self):
        from pathlib import Path

        return {**super().identity(), "checkpoint": Path("/ckpt")}


class BatchDependent(MockAdapter):
    name = "batch_dependent"

    def generate(self, requests):
        preds = super().generate(requests)
        for p in preds:
            if p.text:
                p.text = f"{p.text} x{len(requests)}"  # e.g. padding that leaks into the answer
        return preds


class OneBadImageFailsAll(MockAdapter):
    name = "one_bad_image_fails_all"

    def generate(self, requests):
        try:
            for r in requests:
                for ref in r.images:
                    ref.load()
        except ImageError as exc:
            return [Prediction(error=str(exc)) for _ in requests]
        return super().generate(requests)


class BadImageRaises(MockAdapter):
    name = "bad_image_raises"

    def generate(self, requests):
        for r in requests:
            for ref in r.images:
                ref.load()  # ImageError escapes: the whole batch is lost
        return super().generate(requests)


BROKEN = {
    DropsOne: "4 predictions for 5 requests",
    ProbabilitiesAboveOne: r"candidate probabilities (outside \[0, 1\]|sum to)",
    LogitsNotProbabilities: r"candidate probabilities outside \[0, 1\]",
    IdentityNotJson: "identity\\(\\) is not JSON",
    BatchDependent: "in a batch .* alone",
    OneBadImageFailsAll: "request r0: answered with an error",
    BadImageRaises: None,  # the ImageError itself
}


@pytest.fixture
def planted(monkeypatch):
    classes = {cls.name: cls for cls in (Good, *BROKEN)}
    monkeypatch.setattr(registry, "model_classes", lambda: classes)
    return classes


def test_the_contract_passes_an_adapter_that_keeps_it(planted):
    assert "good" in model_cases()
    run_contract("good")


@pytest.mark.parametrize("cls", list(BROKEN), ids=lambda c: c.name)
def test_the_contract_catches_a_broken_adapter(cls, planted):
    expected = (ImageError,) if BROKEN[cls] is None else (AssertionError,)
    with pytest.raises(expected, match=BROKEN[cls] or "unreadable image"):
        run_contract(cls.name)
