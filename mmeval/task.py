"""The contract every benchmark module under `tasks/` fulfils. A task never imports a model.

A task loads its documents, turns each into a `Request` under a protocol (prompt suffix and
generation settings as the paper that used the protocol did), scores one prediction into a dict
of per-sample values, and aggregates those dicts into metrics. Protocols:

- `llava`: LLaVA-1.5's eval scripts and prompts (VL-Mamba's evaluation),
- `prismatic`: TRI's vlm-evaluation harnesses (Cobra's evaluation),
- `lmms-eval`: lmms-eval's task definitions.

Metrics are in the units the papers print: percentages for rates, raw scores for MME.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from mmeval.bootstrap import Units
from mmeval.data.external_ids import Mapper, default_doc_id_map
from mmeval.data.provenance import DataSource
from mmeval.errors import UnknownNameError
from mmeval.types import Doc, Prediction, Request, SampleRecord

PROTOCOLS = ("llava", "prismatic", "lmms-eval")


def take_options(task_name: str, options: dict[str, str], allowed: dict[str, tuple[str, ...] | None]) -> dict[str, str]:
    """Validate `--task-args`: each key must be known; a tuple lists its allowed values."""
    unknown = [k for k in options if k not in allowed]
    if unknown:
        raise UnknownNameError(f"task {task_name}: unknown option(s) {', '.join(unknown)} "
                               f"(it takes: {', '.join(allowed) or 'none'})")
    out = {}
    for key, value in options.items():
        value = str(value).strip()
        choices = allowed[key]
        if choices is not None:
            value = value.lower()
            if value not in choices:
                raise UnknownNameError(f"task {task_name}: option {key}={value} is not one of {', '.join(choices)}")
        out[key] = value
    return out


class Task(abc.ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""
    protocols: ClassVar[tuple[str, ...]] = ("llava", "lmms-eval")
    default_protocol: ClassVar[str] = "llava"
    version: ClassVar[str] = "1"  # bump when prompts or scoring change, so old runs don't resume into new ones
    # other names of this task's folder under --data (LLaVA-1.5's eval bundle: "MME", "mm-vet", ...)
    data_folders: ClassVar[tuple[str, ...]] = ()
    # what load_docs read (layout, release, split, files with sha256, counts); None until loaded
    data_source: DataSource | None = None
    # the --task-args this instance was built with (set by the registry; recorded as `task_args`)
    options: Mapping[str, str] = MappingProxyType({})

    def __init__(self, **options: str) -> None:
        """Task options come from `--task-args k=v,...` (e.g. a judge endpoint); unknown ones fail."""
        if options:
            raise UnknownNameError(f"task {self.name} takes no options (got: {', '.join(options)})")

    def check_protocol(self, protocol: str) -> str:
        if protocol not in self.protocols:
            raise UnknownNameError(
                f"task {self.name} has no protocol '{protocol}' (it has: {', '.join(self.protocols)})")
        return protocol

    def use_protocol(self, protocol: str) -> None:
        """Called once the protocol is chosen and before `load_docs` (by the runner and by `mmeval
        score`): a task whose data depend on the protocol overrides it (VQAv2's default split is
        each protocol's reference split; POPE prefers POPE's original files under llava and prismatic)."""
        return None

    @abc.abstractmethod
    def load_docs(self, data: Path | None) -> list[Doc]:
        """All documents; `data` is this task's local folder, or None for the hub copy."""

    @abc.abstractmethod
    def request(self, doc: Doc, protocol: str) -> Request:
        """The request for one document under a protocol."""

    @abc.abstractmethod
    def score(self, doc: Doc, prediction: Prediction, protocol: str) -> dict[str, Any]:
        """Per-sample values; must include 'correct' (the main per-sample score, 0..1)
        and whatever `aggregate` needs (category, parsed answer, ...)."""

    @abc.abstractmethod
    def aggregate(self, scores: Sequence[dict[str, Any]], protocol: str) -> dict[str, float]:
        """Metrics from the per-sample dicts of every scored document."""

    def bootstrap_units(self, scores: Sequence[dict[str, Any]], protocol: str) -> Units | None:
        """What the bootstrap intervals resample, given the per-sample dicts `aggregate` takes: the
        units the paper's score is built from (MME's image pairs within subtasks, MMBench's circular
        groups, POPE's questions within splits), as strata and clusters (`mmeval.bootstrap.Units`).
        None: every sample on its own."""
        return None

    @abc.abstractmethod
    def headline(self, protocol: str) -> str:
        """The metric the papers report for this task under this protocol."""

    def ci_metrics(self, protocol: str) -> tuple[str, ...] | None:
        """Metrics that get bootstrap intervals (None: all of them)."""
        return None

    def doc_id_map(self, docs: Sequence[Doc], source: str) -> Mapper:
        """How a predictions file of `source` ("mmeval", "llava", "lmms-eval", "vlm-evaluation"; see
        mmeval.data.predictions) names these documents: a function from a line to the doc id it answers,
        or None for a question outside them. The default (mmeval.data.external_ids) uses LLaVA's
        question ids kept in `Doc.fields`, lmms-eval's row index, vlm-evaluation's question id; a task
        whose ids differ overrides this."""
        return default_doc_id_map(self, docs, source)

    def prediction_variant(self, protocol: str) -> str | None:
        """Which answer to score when a file holds several per question (vlm-evaluation's TextVQA:
        "ocr" / "no_ocr"); None: the task has no variants."""
        return None

    def grade(self, records: Sequence[SampleRecord], docs: Mapping[str, Doc], protocol: str,
              log: Callable[[str], None]) -> list[SampleRecord]:
        """Grading that needs more than the prediction (an LLM judge), after every answer is on disk:
        the runner calls it between merging and reporting, `mmeval score` after scoring. Returns the
        records, graded ones replaced; a task whose `score` is complete returns them as they are."""
        return list(records)

    def image_roots(self) -> tuple[Path, ...]:
        """Folders besides --data that images may come from because the user named them (an
        `images=DIR` task option); a path from a data file anywhere else fails its sample."""
        return ()

    def recorded_options(self) -> dict[str, str]:
        """The --task-args as results files record them (tasks holding secrets redact them)."""
        return dict(self.options)

    def identity_options(self) -> dict[str, str]:
        """The --task-args that change what the model is asked or how its answers are scored before
        grading: part of the run fingerprint (a judge endpoint is not: grading comes after)."""
        return dict(self.options)

    def finalize(self, records: Sequence[Any], out_dir: Path, protocol: str) -> dict[str, Any]:
        """Optional extra outputs after a run (e.g. a submission file for a test server).
        Returns notes to add to the results file."""
        return {}

    @classmethod
    def write_example(cls, directory: Path, seed: int = 0) -> Path:
        """Write a handful of generated documents in one of this task's real layouts under `directory`
        and return the folder to pass to `load_docs` (the contract tests take every task through it).
        The default reads the example writers of mmeval.synth.examples by task name; a task not
        listed there overrides this, or fails its contract test saying so."""
        from mmeval.synth.examples import write_example  # lazily: tasks never need synth to run

        return write_example(cls.name, directory, seed)
