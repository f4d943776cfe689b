"""The Task contract, for every registered task under every protocol it declares: its example data
(`Task.write_example`, generated rows in a real layout) -> load_docs -> request -> the mock model's
answers (candidate probabilities where the protocol asks for them) -> score -> grade (the step after
every answer is saved: an LLM judge) -> summarize (aggregate and bootstrap). A new task module is
tested here the moment it exists; one without example data fails, saying what to add.

Judged tasks get a local fake judge (tests/fake_judge.py) whose replies are a hash of the request.
The last tests plant broken tasks in a temporary registry and check that the contract catches each.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from mmeval import registry
from mmeval.metrics.judge import JudgedTask
from mmeval.rescore import score_file
from mmeval.results import SamplesLog
from mmeval.scoring import sample_record, summarize
from mmeval.synth.examples import example_task_args
from mmeval.task import PROTOCOLS, Task
from mmeval.types import Doc, GenerationConfig, ImageRef, Prediction, Request
from model_adapters.mock import MockAdapter
from tests.fake_judge import fake_endpoint

N_BOOT = 30
JUDGE_REPLIES = ("0.0", "0.5", "1.0", "A", "B")  # MM-Vet grades, MMBench letters; the others exercise retries


def task_protocol_cases() -> list[tuple[str, str]]:
    return [(name, protocol) for name, cls in registry.task_classes().items() for protocol in cls.protocols]


def fake_judge_reply(body: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()
    return JUDGE_REPLIES[digest[0] % len(JUDGE_REPLIES)]


# --------------------------------------------------------------------------- the contract, step by step
def make_task(name: str, judge: dict[str, str]) -> Task:
    """The task through the registry, with its example's options (and the fake judge if it is judged)."""
    cls = registry.task_classes()[name]
    options = example_task_args(name)
    if issubclass(cls, JudgedTask):
        options.update(judge)
    return registry.get_task(name, **options)


def check_declaration(task: Task) -> None:
    assert task.protocols, f"task {task.name}: declares no protocol"
    unknown = [p for p in task.protocols if p not in PROTOCOLS]
    assert not unknown, f"task {task.name}: unknown protocol(s) {unknown} (known: {PROTOCOLS})"
    assert task.default_protocol in task.protocols, \
        f"task {task.name}: default_protocol {task.default_protocol!r} is not one of its protocols {task.protocols}"


def load(task: Task, protocol: str, data: Path) -> list[Doc]:
    task.use_protocol(protocol)
    docs = task.load_docs(data)
    assert docs, f"task {task.name} ({protocol}): load_docs read no documents from its example data {data}"
    ids = [d.doc_id for d in docs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert not dupes, f"task {task.name} ({protocol}): duplicate doc ids {dupes[:5]}"
    assert all(isinstance(i, str) and i for i in ids), f"task {task.name}: doc ids must be non-empty strings"
    assert any(d.images for d in docs), f"task {task.name}: no document carries an image"
    return docs


def build_requests(task: Task, protocol: str, docs: list[Doc]) -> list[Request]:
    requests = [task.request(d, protocol) for d in docs]
    for doc, req in zip(docs, requests, strict=True):
        where = f"task {task.name} ({protocol}) doc {doc.doc_id}"
        assert isinstance(req, Request), f"{where}: request() returned {type(req).__name__}, not a Request"
        assert req.doc_id == doc.doc_id, f"{where}: the request's doc_id is {req.doc_id!r}"
        assert isinstance(req.prompt, str) and req.prompt.strip(), f"{where}: empty prompt"
        assert [i.content_key() for i in req.images] == [i.content_key() for i in doc.images], \
            f"{where}: the request does not carry the document's images"
        assert isinstance(req.generation, GenerationConfig), f"{where}: generation is not a GenerationConfig"
    return requests


def score_records(task: Task, protocol: str, docs: list[Doc], requests: list[Request],
                  predictions: list[Prediction]) -> list:
    records = [sample_record(task, protocol, d, r, p) for d, r, p in zip(docs, requests, predictions, strict=True)]
    for rec in records:
        where = f"task {task.name} ({protocol}) doc {rec.doc_id}"
        assert rec.error is None, f"{where}: the mock's answer could not be scored: {rec.error}"
        correct = rec.scores.get("correct")
        assert isinstance(correct, (int, float)) and not isinstance(correct, bool) and 0.0 <= correct <= 1.0, \
            f"{where}: scores['correct'] must be a number in [0, 1], got {correct!r}"
        try:
            json.dumps(rec.to_json())  # no default=str: the samples file must read back as it was
        except (TypeError, ValueError) as exc:
            raise AssertionError(f"{where}: the sample record is not JSON ({exc})") from exc
    return records


def grade(task: Task, protocol: str, docs: list[Doc], records: list) -> list:
    """The runner's grade step (`Task.grade`): the same documents back, in order."""
    graded = task.grade(records, {d.doc_id: d for d in docs}, protocol, lambda line: None)
    assert [r.doc_id for r in graded] == [r.doc_id for r in records], \
        f"task {task.name} ({protocol}): grade() must return one record per record, in order"
    return graded


def check_summary(task: Task, protocol: str, summary: dict[str, Any]) -> None:
    where = f"task {task.name} ({protocol})"
    metrics, ci = summary["metrics"], summary["ci95"]
    headline = task.headline(protocol)
    assert headline in metrics, f"{where}: aggregate() has no headline metric {headline!r} (it gave {sorted(metrics)})"
    bad = {k: v for k, v in metrics.items() if not (isinstance(v, (int, float)) and math.isfinite(v))}
    assert not bad, f"{where}: metrics that are not finite numbers: {bad}"
    wanted = task.ci_metrics(protocol)
    wanted = tuple(metrics) if wanted is None else wanted
    missing = [k for k in wanted if k not in ci]
    assert not missing, f"{where}: no bootstrap interval for {missing} (ci_metrics names them; aggregate gave " \
                        f"{sorted(metrics)})"
    for k in wanted:
        lo, hi = ci[k]
        assert math.isfinite(lo) and math.isfinite(hi) and lo <= hi, f"{where}: interval of {k} is {ci[k]}"


def rescored(task_name: str, protocol: str, judge: dict[str, str], records: list, data: Path,
             tmp: Path) -> dict[str, Any]:
    """`mmeval score` on the run's samples file, with a fresh task (as in a new process)."""
    samples = tmp / f"{task_name}.samples.jsonl"
    log = SamplesLog(samples)
    log.append(records)
    log.close()
    summary, _ = score_file(make_task(task_name, judge), protocol, samples, data, n_boot=N_BOOT, seed=0)
    summary.pop("coverage")
    return summary


def run_contract(name: str, protocol: str, data: Path, judge: dict[str, str], tmp: Path) -> dict[str, Any]:
    """Every step of the contract for one task under one protocol; returns the summary."""
    task = make_task(name, judge)
    check_declaration(task)
    docs = load(task, protocol, data)
    requests = build_requests(task, protocol, docs)
    predictions = MockAdapter().generate(requests)
    assert len(predictions) == len(requests)
    records = score_records(task, protocol, docs, requests, predictions)
    records = grade(task, protocol, docs, records)
    summary = summarize(task, protocol, records, n_boot=N_BOOT, seed=0)
    assert summary["n"] == len(docs) and summary["n_errors"] == 0
    check_summary(task, protocol, summary)
    again = rescored(name, protocol, judge, records, data, tmp)
    assert again == summary, f"task {name} ({protocol}): rescoring the samples file gives another summary: " \
                             f"{again['metrics']} / {again['ci95']} vs {summary['metrics']} / {summary['ci95']}"
    return summary


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def no_env_judge(monkeypatch):
    for k in ("MMEVAL_JUDGE_URL", "MMEVAL_JUDGE_MODEL", "MMEVAL_JUDGE_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture(scope="module")
def judge_url():
    with fake_endpoint(fake_judge_reply) as (url, _):
        yield url


@pytest.fixture
def judge(judge_url, tmp_path) -> dict[str, str]:
    return {"judge_url": judge_url, "judge_model": "fake-judge", "judge_cache": str(tmp_path / "judge")}


@pytest.fixture(scope="module")
def example_data(tmp_path_factory):
    """A task's example folder, written once per module (every protocol of a task reads the same files)."""
    written: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in written:
            cls = registry.task_classes()[name]
            written[name] = cls.write_example(tmp_path_factory.mktemp(f"example_{name}"), seed=0)
        return written[name]

    return get


# --------------------------------------------------------------------------- every task x protocol
@pytest.mark.parametrize(("name", "protocol"), task_protocol_cases(), ids=lambda v: v)
def test_task_contract(name, protocol, example_data, judge, tmp_path):
    run_contract(name, protocol, example_data(name), judge, tmp_path)


def test_every_builtin_task_is_covered():
    """The cases come from the registry: every task module under tasks/ is in them, each protocol once."""
    import pkgutil

    import tasks

    modules = {m.name for m in pkgutil.iter_modules(tasks.__path__) if not m.name.startswith("_")}
    covered = {registry.task_classes()[name].__module__.split(".")[-1] for name, _ in task_protocol_cases()}
    assert modules <= covered
    cases = task_protocol_cases()
    assert len(cases) == len(set(cases)) == sum(len(c.protocols) for c in registry.task_classes().values())


# --------------------------------------------------------------------------- the contract catches broken tasks
class ToyTask(Task):
    """A minimal task that keeps the contract: yes/no questions on one-pixel pictures, in a JSON file."""

    name = "toy"
    protocols = ("llava", "prismatic")

    @classmethod
    def write_example(cls, directory: Path, seed: int = 0) -> Path:
        from PIL import Image

        rng = random.Random(seed)
        rows = []
        for i in range(8):
            Image.new("RGB", (4, 4), (rng.randrange(256), 0, 0)).save(directory / f"{i}.png")
            rows.append({"id": f"q{i}", "image": f"{i}.png", "answer": "yes" if i % 2 else "no"})
        (directory / "toy.json").write_text(json.dumps(rows))
        return directory

    def load_docs(self, data: Path | None) -> list[Doc]:
        rows = json.loads((data / "toy.json").read_text())
        return [Doc(doc_id=r["id"], fields={}, target=r["answer"],
                    images=(ImageRef(source=r["image"], path=str(data / r["image"])),)) for r in rows]

    def request(self, doc: Doc, protocol: str) -> Request:
        gen = GenerationConfig(max_new_tokens=0, candidates=("Yes", "No")) if protocol == "prismatic" \
            else GenerationConfig(max_new_tokens=4)
        return Request(doc_id=doc.doc_id, prompt="Is it red? Answer yes or no.", images=doc.images, generation=gen)

    def answer(self, prediction: Prediction, protocol: str) -> str:
        if protocol == "prismatic":
            return "yes" if prediction.candidate_probs["Yes"] >= prediction.candidate_probs["No"] else "no"
        return "yes" if prediction.text.lower().startswith("yes") else "no"

    def score(self, doc: Doc, prediction: Prediction, protocol: str) -> dict[str, Any]:
        return {"correct": float(self.answer(prediction, protocol) == doc.target)}

    def aggregate(self, scores, protocol: str) -> dict[str, float]:
        return {"accuracy": 100.0 * sum(s["correct"] for s in scores) / len(scores)} if scores else {}

    def headline(self, protocol: str) -> str:
        return "accuracy"


class NoHeadline(ToyTask):
    name = "no_headline"

    def aggregate(self, scores, protocol):
        return {"acc": 100.0 * sum(s["correct"] for s in scores) / len(scores)}


class CorrectOutOfRange(ToyTask):
    name = "correct_out_of_range"

    def score(self, doc, prediction, protocol):
        return {"correct": 100.0 * super().score(doc, prediction, protocol)["correct"]}  # a percentage


class DropsImages(ToyTask):
    name = "drops_images"

    def request(self, doc, protocol):
        req = super().request(doc, protocol)
        req.images = ()
        return req


class EmptyPrompt(ToyTask):
    name = "empty_prompt"

    def request(self, doc, protocol):
        req = super().request(doc, protocol)
        req.prompt = " "
        return req


class DuplicateIds(ToyTask):
    name = "duplicate_ids"

    def load_docs(self, data):
        docs = super().load_docs(data)
        docs[1].doc_id = docs[0].doc_id
        return docs


class IntervalMissing(ToyTask):
    name = "interval_missing"

    def ci_metrics(self, protocol):
        return ("accuracy", "f1")  # f1 is never computed


class NotFinite(ToyTask):
    name = "not_finite"

    def aggregate(self, scores, protocol):
        return {**super().aggregate(scores, protocol), "ratio": float("nan")}


class NotJson(ToyTask):
    name = "not_json"

    def score(self, doc, prediction, protocol):
        return {**super().score(doc, prediction, protocol), "seen": {doc.doc_id}}  # a set


class NotReproducible(ToyTask):
    name = "not_reproducible"

    def score(self, doc, prediction, protocol):
        return {"correct": random.random()}  # not a function of the prediction: rescoring differs


class NoExample(ToyTask):
    name = "no_example"
    # the default: the writers of mmeval.synth.examples, which have none for "no_example"
    write_example = classmethod(Task.write_example.__func__)


class UndeclaredDefault(ToyTask):
    name = "undeclared_default"
    default_protocol = "lmms-eval"


BROKEN = {
    NoHeadline: "no headline metric 'accuracy'",
    CorrectOutOfRange: r"scores\['correct'\] must be a number in \[0, 1\], got 100.0",
    DropsImages: "does not carry the document's images",
    EmptyPrompt: "empty prompt",
    DuplicateIds: "duplicate doc ids",
    IntervalMissing: r"no bootstrap interval for \['f1'\]",
    NotFinite: "not finite numbers: {'ratio': nan}",
    NotJson: "the sample record is not JSON",
    NotReproducible: "rescoring the samples file gives another summary",
    UndeclaredDefault: "default_protocol 'lmms-eval' is not one of its protocols",
}


@pytest.fixture
def planted(monkeypatch):
    """The registry replaced by the toy task and every broken variant of it."""
    classes = {cls.name: cls for cls in (ToyTask, NoExample, *BROKEN)}
    monkeypatch.setattr(registry, "task_classes", lambda: classes)
    return classes


def test_the_contract_passes_a_task_that_keeps_it(planted, judge, tmp_path):
    assert ("toy", "prismatic") in task_protocol_cases()
    for protocol in ToyTask.protocols:
        data = tmp_path / protocol / "data"
        data.mkdir(parents=True)
        ToyTask.write_example(data)
        summary = run_contract("toy", protocol, data, judge, tmp_path / protocol)
        assert summary["n"] == 8 and 0.0 <= summary["metrics"]["accuracy"] <= 100.0


@pytest.mark.parametrize("cls", list(BROKEN), ids=lambda c: c.name)
def test_the_contract_catches_a_broken_task(cls, planted, judge, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    cls.write_example(data)
    with pytest.raises(AssertionError, match=BROKEN[cls]):
        for protocol in cls.protocols:
            run_contract(cls.name, protocol, data, judge, tmp_path)


def test_a_task_without_example_data_fails_saying_what_to_add(planted, tmp_path):
    with pytest.raises(NotImplementedError, match=r"task no_example has no example data: add an Example to EXAMPLES "
                                                  r"in mmeval/synth/examples.py, or override `write_example"):
        NoExample.write_example(tmp_path)
