"""`mock`: a deterministic stand-in model for the harness's own tests and demos.

It reads every image (so broken images surface as they would with a real model) and answers from
a hash of the seed, the prompt and the image bytes: the same request always gets the same answer,
and different requests get varied answers. Candidate probabilities come from the same hash.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any

from mmeval.adapter import Adapter, LmmsEvalName, parse_float, parse_int
from mmeval.types import ImageError, Prediction, Request

ANSWERS = ("Yes", "No", "Yes, there is.", "No, there is not.", "A", "B", "C", "2", "red", "True", "False")


class MockAdapter(Adapter):
    name = "mock"
    description = "deterministic hash-based answers; no weights (for tests)"
    preferred_protocol = "llava"
    options = {"seed": "integer mixed into every answer (default 0)",
               "answers": "'|'-separated answers to pick from (default: a yes/no/letter/word mix)",
               "delay": "seconds to sleep per batch (to test interrupted runs)"}
    lmms_eval = LmmsEvalName("mmeval_mock")

    def __init__(self, seed: int = 0, answers: Sequence[str] = ANSWERS, delay: float = 0.0):
        self.seed, self.answers, self.delay = seed, tuple(answers), delay

    @classmethod
    def from_args(cls, args: dict[str, str], device: str = "cpu") -> MockAdapter:
        cls.check_args(args)
        answers = tuple(args["answers"].split("|")) if "answers" in args else ANSWERS
        return cls(seed=parse_int(args.get("seed"), "seed"), answers=answers,
                   delay=parse_float(args.get("delay"), "delay", minimum=0.0))

    def _digest(self, request: Request) -> bytes:
        h = hashlib.sha256(f"{self.seed}\0{request.prompt}".encode())
        for ref in request.images:
            ref.load()
            h.update(ref.digest_bytes())
        return h.digest()

    def generate(self, requests: Sequence[Request]) -> list[Prediction]:
        if self.delay:
            time.sleep(self.delay)
        preds = []
        for req in requests:
            try:
                digest = self._digest(req)
            except ImageError as exc:
                preds.append(Prediction(error=str(exc)))
                continue
            gen = req.generation
            probs = None
            if gen.candidates:
                raw = [digest[i % len(digest)] + 1 for i in range(len(gen.candidates))]
                probs = {c: r / (2.0 * sum(raw)) for c, r in zip(gen.candidates, raw, strict=True)}  # sums to 0.5
            text = self.answers[digest[-1] % len(self.answers)] if gen.max_new_tokens > 0 else ""
            text = " ".join(text.split()[: gen.max_new_tokens]) if gen.max_new_tokens > 0 else ""
            preds.append(Prediction(text=text, candidate_probs=probs, n_tokens=len(text.split())))
        return preds

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "args": {"seed": str(self.seed)}, "checkpoint": None,
                "checkpoint_sha256": None, "config": {"answers": list(self.answers)}}
