"""One evaluation run: plan (tasks x model x protocol) -> requests -> schedule -> generate ->
score -> append samples -> aggregate -> results file. Resumable: finished samples are read back
from the samples log and not asked again.

`Runner.run_plans` loads the model and opens the run folder once; then each task goes through
`Runner._run_task`'s steps, each its own method: resume (bind the task in run.json, read back what
is done), shard (this process's share under torchrun), answer (batches with image prefetch, each
scored with `mmeval.scoring.sample_record` and appended to the samples log), gather (counts summed
over ranks), merge (rank 0 folds per-rank logs into one) and report (`mmeval.scoring.summarize`,
timings, the task's extra outputs, the results file written atomically).
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmeval import environment
from mmeval.adapter import Adapter
from mmeval.data.sources import task_data_dir
from mmeval.distributed import DistContext, init_from_env, shard_by_group
from mmeval.errors import DataError, RunError
from mmeval.registry import check_protocol_name, get_model_class, get_task
from mmeval.results import RunManifest, SamplesLog, fingerprint, merge_samples, read_all_samples, write_json_atomic
from mmeval.scheduler import schedule
from mmeval.scoring import sample_record, summarize
from mmeval.task import Task
from mmeval.types import Doc, Request, SampleRecord


def record_function(name: str):
    """A torch.profiler region (shows in `bench/profile_paths.py`); imported late so that the
    runner module itself does not pull in torch."""
    from torch.profiler import record_function as region

    return region(name)


@dataclass
class RunConfig:
    model: str
    tasks: list[str]
    model_args: dict[str, str] = field(default_factory=dict)
    task_args: dict[str, dict[str, str]] = field(default_factory=dict)  # task -> options
    protocol: str | None = None  # None: the model's preferred protocol where a task has it
    data: Path | None = None
    limit: int | None = None
    batch_size: int = 8
    device: str = "cpu"
    output: Path = Path("results")
    run_name: str | None = None
    n_boot: int = 1000
    seed: int = 0
    progress: bool = True


@dataclass
class TaskPlan:
    task: Task
    protocol: str
    docs: list[Doc]
    requests: list[Request]


@dataclass
class TaskState:
    """One task on its way through `Runner._run_task`: what each step hands the next."""

    plan: TaskPlan
    description: dict[str, Any]  # what run.json binds the task to (see `generation_description`)
    done: dict[str, SampleRecord]  # finished samples by doc_id: read back, then answered in this run
    pending: list[int]  # indices into plan.docs / plan.requests that this process answers
    resumed: int  # documents of the plan finished before this run


@dataclass
class Answered:
    """What the answering step measured (on this process, or summed over ranks by `_gather`)."""

    wall_s: float
    n_samples: float
    n_tokens: float


def resolve_protocol(task: Task, asked: str | None, adapter_cls: type[Adapter]) -> str:
    if asked is not None:
        return task.check_protocol(check_protocol_name(asked))
    preferred = adapter_cls.preferred_protocol
    return preferred if preferred in task.protocols else task.default_protocol


def load_task_docs(task: Task, data: Path | None, limit: int | None) -> list[Doc]:
    docs = task.load_docs(task_data_dir(task.name, data, task.data_folders))
    seen: set[str] = set()
    for d in docs:
        if d.doc_id in seen:
            raise DataError(f"task {task.name}: duplicate doc_id {d.doc_id} in the data")
        seen.add(d.doc_id)
    return docs[:limit] if limit is not None else docs


def generation_description(task: Task, protocol: str, requests: Sequence[Request]) -> dict[str, Any]:
    configs = {r.generation for r in requests}
    gen = [c.to_json() for c in sorted(configs, key=repr)]
    return {"task": task.name, "protocol": protocol, "task_version": task.version,
            "generation": gen[0] if len(gen) == 1 else gen}


class Runner:
    """Runs a RunConfig. `log` receives one-line messages for the user."""

    def __init__(self, config: RunConfig, log: Callable[[str], None] = print):
        self.config, self.log = config, log
        self.dist, self.device = DistContext(), config.device

    def plan(self, adapter_cls: type[Adapter]) -> list[TaskPlan]:
        plans = []
        for name in self.config.tasks:
            task = get_task(name, **self.config.task_args.get(name, {}))
            protocol = resolve_protocol(task, self.config.protocol, adapter_cls)
            docs = load_task_docs(task, self.config.data, self.config.limit)
            plans.append(TaskPlan(task, protocol, docs, [task.request(d, protocol) for d in docs]))
        return plans

    def run(self, adapter: Adapter | None = None) -> dict[str, dict[str, Any]] | None:
        """Plan, then run (see `run_plans` for what it returns)."""
        adapter_cls = get_model_class(self.config.model)
        plans = self.plan(adapter_cls)  # data problems surface before a model is loaded
        return self.run_plans(plans, adapter_cls, adapter)

    def run_plans(self, plans: list[TaskPlan], adapter_cls: type[Adapter],
                  adapter: Adapter | None = None) -> dict[str, dict[str, Any]] | None:
        """Run planned tasks (also used by `mmeval bench` with in-memory documents).

        Returns each task's summary (the content of its results file) by task name on the main
        process; None on the other ranks under torchrun, where rank 0 merges and reports.
        """
        self.dist = init_from_env(self.config.device)
        self.device = self.dist.device(self.config.device)
        adapter = self._load_model(adapter_cls, adapter)
        identity = adapter.identity()
        run_dir, manifest = self._open_run_dir(identity)
        results = {}
        for plan in plans:
            summary = self._run_task(plan, adapter, identity, run_dir, manifest)
            if summary is not None:
                results[plan.task.name] = summary
        return results if self.dist.is_main else None

    def _load_model(self, adapter_cls: type[Adapter], adapter: Adapter | None) -> Adapter:
        """The adapter given (bench passes a loaded one), or one built from --model-args on this device."""
        return adapter if adapter is not None else adapter_cls.from_args(self.config.model_args, device=self.device)

    def _open_run_dir(self, identity: dict[str, Any]) -> tuple[Path, RunManifest]:
        """The run folder and its manifest, bound to this model (a different one is refused).
        The default folder is per model and protocol choice; a fixed --run-name is checked per task."""
        cfg = self.config
        run_dir = cfg.output / (cfg.run_name or f"{cfg.model}_{fingerprint([identity, cfg.protocol])[:10]}")
        manifest = RunManifest(run_dir)
        manifest.bind_model(fingerprint(identity), identity)
        if self.dist.is_main:
            self.log(f"run directory: {run_dir}")
        return run_dir, manifest

    def _run_task(self, plan: TaskPlan, adapter: Adapter, identity: dict[str, Any], run_dir: Path,
                  manifest: RunManifest) -> dict[str, Any] | None:
        """One task, step by step. Its summary on the main process; None on the other ranks."""
        state = self._resume(plan, run_dir, manifest)
        state.pending = self._my_share(plan, state.pending)
        answered = self._answer(state, adapter, self._samples_log(run_dir, plan.task.name))
        answered = self._gather(answered)
        if not self.dist.is_main:
            return None
        records = self._merge(state, run_dir)
        return self._report(state, records, answered, identity, run_dir)

    def _resume(self, plan: TaskPlan, run_dir: Path, manifest: RunManifest) -> TaskState:
        """Bind the task in run.json (a changed protocol, generation config or task version is
        refused) and read back the samples an earlier run finished: the others are pending.
        Errored samples are not finished: they are asked again."""
        task, dist = plan.task, self.dist
        description = generation_description(task, plan.protocol, plan.requests)
        manifest.bind_task(task.name, fingerprint(description), description, write=dist.is_main)
        done = {k: r for k, r in read_all_samples(run_dir, task.name).items() if r.error is None}
        pending = [i for i, d in enumerate(plan.docs) if d.doc_id not in done]
        resumed = len({d.doc_id for d in plan.docs} & done.keys())
        if dist.is_main:
            self.log(f"{task.name} [{plan.protocol}]: {len(plan.docs)} samples"
                     + (f", {resumed} already done, {len(pending)} to go" if resumed else "")
                     + (f", on {dist.world_size} processes" if dist.world_size > 1 else ""))
        return TaskState(plan, description, done, pending, resumed)

    def _my_share(self, plan: TaskPlan, pending: list[int]) -> list[int]:
        """The pending documents this process answers: all of them, or whole image groups under torchrun."""
        dist = self.dist
        if dist.world_size == 1:
            return pending
        mine = shard_by_group([plan.requests[i] for i in pending], dist.world_size, dist.rank)
        return [pending[j] for j in mine]

    def _samples_log(self, run_dir: Path, task: str) -> SamplesLog:
        """The task's samples log, or under torchrun this rank's own (rank 0 merges them)."""
        rank = f".rank{self.dist.rank}" if self.dist.world_size > 1 else ""
        return SamplesLog(run_dir / f"{task}.samples{rank}.jsonl")

    def _answer(self, state: TaskState, adapter: Adapter, log: SamplesLog) -> Answered:
        """Ask the model for every pending document in scheduled batches; each batch is scored and
        appended to the samples log as soon as it is answered (a kill loses at most that batch)."""
        cfg, plan = self.config, state.plan
        environment.reset_peak_memory(self.device)
        started = time.perf_counter()
        n_tokens = 0
        batches = [[state.pending[j] for j in b]
                   for b in schedule([plan.requests[i] for i in state.pending], cfg.batch_size)]
        progress = _progress(len(state.pending), plan.task.name, cfg.progress and self.dist.is_main)
        try:
            with ThreadPoolExecutor(max_workers=1) as pool:
                for batch in _prefetched(pool, adapter, plan.requests, batches):
                    batch_requests = [plan.requests[i] for i in batch]
                    with record_function("mmeval.generate"):
                        preds = adapter.generate(batch_requests)
                    if len(preds) != len(batch):
                        raise RunError(f"model {cfg.model} returned {len(preds)} predictions for {len(batch)} requests")
                    with record_function("mmeval.score_and_log"):
                        records = [sample_record(plan.task, plan.protocol, plan.docs[i], plan.requests[i], p)
                                   for i, p in zip(batch, preds, strict=True)]
                        log.append(records)
                    for r in records:
                        state.done[r.doc_id] = r
                        n_tokens += r.n_tokens
                    for req in batch_requests:
                        for ref in req.images:
                            ref.release()
                    progress.update(len(batch))
        finally:
            progress.close()
            log.close()
        return Answered(time.perf_counter() - started, len(state.pending), n_tokens)

    def _gather(self, answered: Answered) -> Answered:
        """Counts summed over ranks (the run's throughput), once every rank has finished answering."""
        n_samples, n_tokens = self.dist.sum([answered.n_samples, answered.n_tokens])
        self.dist.barrier()
        return Answered(answered.wall_s, n_samples, n_tokens)

    def _merge(self, state: TaskState, run_dir: Path) -> list[SampleRecord]:
        """Fold per-rank samples logs into the task's one (a no-op for a single process); the
        records of the plan's documents, in document order."""
        plan = state.plan
        state.done.update(merge_samples(run_dir, plan.task.name, [d.doc_id for d in plan.docs]))
        return [state.done[d.doc_id] for d in plan.docs if d.doc_id in state.done]

    def _report(self, state: TaskState, records: list[SampleRecord], answered: Answered,
                identity: dict[str, Any], run_dir: Path) -> dict[str, Any]:
        """Summarise, add what was run where and how fast, let the task write its extra outputs,
        and write the results file atomically."""
        cfg, task, protocol, dist = self.config, state.plan.task, state.plan.protocol, self.dist
        summary = summarize(task, protocol, records, cfg.n_boot, cfg.seed)
        summary.update({
            "model": identity,
            "generation": state.description["generation"],
            "timings": self._timings(answered, state.resumed),
            "versions": environment.library_versions(),
            "device": environment.device_name(self.device) + (f" x{dist.world_size}" if dist.world_size > 1 else ""),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "run": run_dir.name,
        })
        notes = task.finalize(records, run_dir, protocol)
        if notes:
            summary["notes"] = notes
        write_json_atomic(run_dir / f"{task.name}.json", summary)
        errors = [r for r in records if r.error is not None]
        if errors:
            self.log(f"{task.name}: {len(errors)} sample(s) failed and are excluded from the metrics, e.g. "
                     f"{errors[0].doc_id}: {errors[0].error}")
        return summary

    def _timings(self, answered: Answered, resumed: int) -> dict[str, Any]:
        """The results file's `timings`: answering throughput over all ranks, this process's peak memory."""
        wall, n_done, n_tokens = answered.wall_s, answered.n_samples, answered.n_tokens
        return {
            "wall_s": round(wall, 3),
            "samples_timed": int(n_done),
            "samples_per_s": round(n_done / wall, 3) if n_done and wall > 0 else None,
            "tokens_per_s": round(n_tokens / wall, 3) if n_done and wall > 0 else None,
            "peak_memory_mb": round(environment.peak_memory_mb(self.device), 1),
            "resumed_samples": resumed,
            "processes": self.dist.world_size,
        }


def _prefetched(pool: Executor, adapter: Adapter, requests: Sequence[Request],
                batches: list[list[int]]) -> Iterator[list[int]]:
    """Yield each batch (indices into `requests`) once its images are decoded (`adapter.prepare`),
    with the next batch's decoding already started in `pool`, so the model never waits on images."""
    ahead = pool.submit(adapter.prepare, [requests[i] for i in batches[0]]) if batches else None
    for b, batch in enumerate(batches):
        with record_function("mmeval.wait_images"):
            ahead.result()
        if b + 1 < len(batches):
            ahead = pool.submit(adapter.prepare, [requests[i] for i in batches[b + 1]])
        yield batch


def _progress(total: int, desc: str, enabled: bool):
    """One bar per task on stderr: done/total, elapsed<ETA, samples/s."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=" samples", disable=not enabled or total == 0, dynamic_ncols=True,
                mininterval=1.0)
