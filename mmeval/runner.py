"""One evaluation run: plan (tasks x model x protocol) -> requests -> schedule -> generate ->
score -> append samples -> grade -> aggregate -> results file. Resumable: finished samples are
read back from the samples log and not asked again.

A run is its inputs: each task's description (protocol, generation config, task version, task
options, and the data's identity from `mmeval.data.identity`) is fingerprinted with the model's
identity. The default run folder is named by that fingerprint, so other inputs start another
folder; a fixed --run-name holding other inputs stops with one line (run.json and each samples
file's identity record are checked before anything is read back or written). The run folder is
locked (`mmeval.runlock`) while a run works in it.

`Runner.run_plans` loads the model, describes every task, then locks and opens the run folder once;
then each task goes through `Runner._run_task`'s steps, each its own method: resume (read back what
is done), shard (this process's share under torchrun), answer (batches with image prefetch, each
scored with `mmeval.scoring.sample_record` and appended to the samples log), gather (counts summed
over ranks), merge (rank 0 folds per-rank logs into one), grade (the task's `grade` hook, e.g. an
LLM judge, once every answer is on disk; graded records replace the samples file atomically) and
report (`mmeval.scoring.summarize`, timings, the task's extra outputs, the results file written
atomically).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmeval import environment
from mmeval.adapter import Adapter
from mmeval.batching import AUTO, Batches, BatchSizer, BatchSizes
from mmeval.data.containment import contain_images
from mmeval.data.identity import DataIdentity, data_identity
from mmeval.data.sources import task_data_dir
from mmeval.distributed import DistContext, init_from_env, shard_by_group
from mmeval.errors import DataError, RunError
from mmeval.gpu_busy import GpuSpans
from mmeval.registry import check_protocol_name, get_model_class, get_task
from mmeval.results import (
    RunManifest,
    SamplesIdentity,
    SamplesLog,
    fingerprint,
    merge_samples,
    read_all_samples,
    write_json_atomic,
    write_samples,
)
from mmeval.runlock import RunLock
from mmeval.scheduler import schedule_order
from mmeval.scoring import sample_record, summarize
from mmeval.task import Task
from mmeval.types import Doc, Request, SampleRecord
from mmeval.validation import generate_checked


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
    batch_size: int | str = AUTO  # requests per batch, or "auto" (`mmeval.batching`)
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
    data: DataIdentity | None = None  # of all the task's documents (before --limit); None: from `docs`


@dataclass(frozen=True)
class TaskDescription:
    """What a task's samples in a run folder are bound to (see `generation_description`)."""

    task: str
    description: dict[str, Any]
    fingerprint: str


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
    """What the answering step measured (on this process, or summed over ranks by `_gather`).
    Warm-up: the first batch at each batch size (kernel compilation, CUDA-graph capture); the
    steady figures leave it out."""

    wall_s: float
    n_samples: float
    n_tokens: float
    batch_size: int | None = None  # the size the run ended at (auto's choice, or halved)
    first_answer_s: float | None = None  # from the command's start to this task's first answered batch
    warmup_s: float = 0.0
    n_steady: float = 0.0
    gpu_busy_s: float | None = None  # CUDA-event time of the batches' GPU work (`mmeval.gpu_busy`)


def resolve_protocol(task: Task, asked: str | None, adapter_cls: type[Adapter]) -> str:
    if asked is not None:
        return task.check_protocol(check_protocol_name(asked))
    preferred = adapter_cls.preferred_protocol
    return preferred if preferred in task.protocols else task.default_protocol


def read_task_docs(task: Task, protocol: str, data: Path | None) -> tuple[list[Doc], Path | None]:
    """All of a task's documents under `protocol` (a task's data may depend on it: VQAv2's default
    split), ids checked unique, image paths outside --data and the task's image roots failing their
    sample; and the task's data folder."""
    task.use_protocol(protocol)
    data_dir = task_data_dir(task.name, data, task.data_folders)
    try:
        docs = task.load_docs(data_dir)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        # the fallback for a layout problem no check named (the checks in mmeval.data.sources name
        # the file, column and expected type): still one line, naming the task and the folder
        raise DataError(f"task {task.name}: the data in {data_dir or 'the hub copy'} is not in a layout it reads "
                        f"({type(exc).__name__}: {exc})") from exc
    if not docs:
        raise DataError(f"task {task.name}: no documents in {data_dir or 'the hub copy'}")
    seen: set[str] = set()
    for d in docs:
        if d.doc_id in seen:
            raise DataError(f"task {task.name}: duplicate doc_id {d.doc_id} in the data")
        seen.add(d.doc_id)
    roots = [Path(data).expanduser()] if data is not None else []
    contain_images(docs, [*roots, *task.image_roots()])
    return docs, data_dir


def load_task_docs(task: Task, protocol: str, data: Path | None, limit: int | None) -> list[Doc]:
    """The task's documents under `protocol` (see `read_task_docs`), the first `limit` of them."""
    docs, _ = read_task_docs(task, protocol, data)
    return docs[:limit] if limit is not None else docs


def generation_description(task: Task, protocol: str, requests: Sequence[Request],
                           data: DataIdentity) -> dict[str, Any]:
    """What a task's samples depend on: protocol, generation config, task version, the task options
    that change the questions, and the data's identity."""
    configs = {r.generation for r in requests}
    gen = [c.to_json() for c in sorted(configs, key=repr)]
    return {"task": task.name, "protocol": protocol, "task_version": task.version,
            "generation": gen[0] if len(gen) == 1 else gen, "task_args": task.identity_options(),
            "data": data.to_json()}


class Runner:
    """Runs a RunConfig. `log` receives one-line messages for the user."""

    def __init__(self, config: RunConfig, log: Callable[[str], None] = print):
        self.config, self.log = config, log
        self.dist, self.device = DistContext(), config.device
        self.data_s: float | None = None  # reading the tasks' data (None: the caller passed plans)
        self.load_s: float | None = None  # building / loading the model (None: the caller passed it)
        self.batch_sizes: BatchSizes | None = None

    def plan(self, adapter_cls: type[Adapter]) -> list[TaskPlan]:
        plans = []
        for name in self.config.tasks:
            task = get_task(name, **self.config.task_args.get(name, {}))
            protocol = resolve_protocol(task, self.config.protocol, adapter_cls)
            docs, data_dir = read_task_docs(task, protocol, self.config.data)
            data = data_identity(task, data_dir, docs)  # of all documents: --limit N resumes into the full run
            if self.config.limit is not None:
                docs = docs[:self.config.limit]
            plans.append(TaskPlan(task, protocol, docs, [task.request(d, protocol) for d in docs], data))
        return plans

    def run(self, adapter: Adapter | None = None) -> dict[str, dict[str, Any]] | None:
        """Plan, then run (see `run_plans` for what it returns)."""
        adapter_cls = get_model_class(self.config.model)
        started = time.perf_counter()
        plans = self.plan(adapter_cls)  # data problems surface before a model is loaded
        self.data_s = round(time.perf_counter() - started, 3)
        return self.run_plans(plans, adapter_cls, adapter)

    def run_plans(self, plans: list[TaskPlan], adapter_cls: type[Adapter],
                  adapter: Adapter | None = None) -> dict[str, dict[str, Any]] | None:
        """Run planned tasks (also used by `mmeval bench` with in-memory documents).

        Returns each task's summary (the content of its results file) by task name on the main
        process; None on the other ranks under torchrun, where rank 0 merges and reports.
        """
        self.dist = init_from_env(self.config.device)
        self.device = self.dist.device(self.config.device)
        self.batch_sizes = BatchSizes(self.config.batch_size, self.device,
                                      self.log if self.dist.is_main else lambda m: None)
        started = time.perf_counter()
        loaded = adapter is None
        adapter = self._load_model(adapter_cls, adapter)
        self.load_s = round(time.perf_counter() - started, 3) if loaded else None
        identity = adapter.identity()
        described = [self._describe(plan) for plan in plans]
        run_dir = self._run_dir(identity, described)
        lock = RunLock(run_dir) if self.dist.is_main else None  # rank 0 holds it for the whole group
        if lock is not None:
            lock.acquire()
        try:
            self.dist.barrier()
            self._open_run_dir(run_dir, identity, described)
            results = {}
            for plan, desc in zip(plans, described, strict=True):
                summary = self._run_task(plan, desc, adapter, identity, run_dir)
                if summary is not None:
                    results[plan.task.name] = summary
        finally:
            if lock is not None:
                lock.release()
        return results if self.dist.is_main else None

    def _load_model(self, adapter_cls: type[Adapter], adapter: Adapter | None) -> Adapter:
        """The adapter given (bench passes a loaded one), or one built from --model-args on this device."""
        return adapter if adapter is not None else adapter_cls.from_args(self.config.model_args, device=self.device)

    def _describe(self, plan: TaskPlan) -> TaskDescription:
        """The task's description and fingerprint (the data identified from the plan's documents
        when the plan was built in memory, as `mmeval bench` does)."""
        data = plan.data if plan.data is not None else data_identity(plan.task, None, plan.docs)
        description = generation_description(plan.task, plan.protocol, plan.requests, data)
        return TaskDescription(plan.task.name, description, fingerprint(description))

    def _run_dir(self, identity: dict[str, Any], described: Sequence[TaskDescription]) -> Path:
        """--run-name, else `<model>_<hash>` of the model identity and every task's fingerprint: the
        same command on the same inputs resumes there; other inputs get another folder."""
        cfg = self.config
        if cfg.run_name:
            return cfg.output / cfg.run_name
        tasks = {d.task: d.fingerprint for d in described}
        return cfg.output / f"{cfg.model}_{fingerprint([identity, tasks])[:10]}"

    def _open_run_dir(self, run_dir: Path, identity: dict[str, Any], described: Sequence[TaskDescription]) -> None:
        """Check the run folder holds nothing answered under other inputs (run.json's model and task
        fingerprints, and each samples file's identity record), for every task before any is run;
        then bind them (rank 0 writes)."""
        manifest = RunManifest(run_dir)
        model_fp = fingerprint(identity)
        manifest.bind_model(model_fp, identity)
        to_write = []
        for d in described:
            manifest.check_task(d.task, d.fingerprint, d.description)
            ident = SamplesIdentity(run_dir, d.task)
            expected = ident.record(model_fp, identity, d.fingerprint, d.description)
            if ident.check(expected):
                to_write.append((ident, expected))
        if self.dist.is_main:
            for d in described:
                manifest.bind_task(d.task, d.fingerprint, d.description, write=False)
            write_json_atomic(manifest.path, manifest.data)
            for ident, expected in to_write:
                ident.write(expected)
            self.log(f"run directory: {run_dir}")
        self.dist.barrier()  # no rank appends a sample before its identity record is on disk

    def _run_task(self, plan: TaskPlan, desc: TaskDescription, adapter: Adapter, identity: dict[str, Any],
                  run_dir: Path) -> dict[str, Any] | None:
        """One task, step by step. Its summary on the main process; None on the other ranks."""
        state = self._resume(plan, desc, run_dir)
        state.pending = self._my_share(plan, state.pending)
        sizer = self._sizer(state, adapter, identity)
        answered = self._answer(state, adapter, self._samples_log(run_dir, plan.task.name), sizer)
        answered = self._gather(answered)
        if not self.dist.is_main:
            return None
        records = self._merge(state, run_dir)
        records = self._grade(state, records, run_dir)
        return self._report(state, records, answered, identity, run_dir)

    def _resume(self, plan: TaskPlan, desc: TaskDescription, run_dir: Path) -> TaskState:
        """Read back the samples an earlier run finished (its inputs were checked by
        `_open_run_dir`): the others are pending. Errored samples are not finished: they are asked again."""
        task, dist = plan.task, self.dist
        description = desc.description
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

    def _sizer(self, state: TaskState, adapter: Adapter, identity: dict[str, Any]) -> BatchSizer:
        """This task's batch size: the given one, or auto's for this model and workload shape."""
        shape = (fingerprint(identity), fingerprint(state.description))
        return self.batch_sizes.sizer(shape, len(state.pending), free_memory=adapter.free_memory)

    def _answer(self, state: TaskState, adapter: Adapter, log: SamplesLog, sizer: BatchSizer) -> Answered:
        """Ask the model for every pending document in scheduled batches; each batch is scored and
        appended to the samples log as soon as it is answered (a kill loses at most that batch).
        The batch size may change on the way (auto's measured first batch; halved after running
        out of memory: `BatchSizer`)."""
        cfg, plan = self.config, state.plan
        environment.reset_peak_memory(self.device)
        started = time.perf_counter()
        n_tokens, first_answer, warmup_s, n_steady, sizes_seen = 0, None, 0.0, 0, set()
        order = schedule_order([plan.requests[i] for i in state.pending])
        batches = Batches([state.pending[j] for j in order], sizer.size)
        gpu = GpuSpans(self.device)
        progress = _progress(len(state.pending), plan.task.name, cfg.progress and self.dist.is_main)
        try:
            with ThreadPoolExecutor(max_workers=1) as pool:
                for batch in _prefetched(pool, adapter, plan.requests, batches):
                    batch_requests = [plan.requests[i] for i in batch]
                    t_batch = time.perf_counter()
                    n_runs = len(sizer.sizes_run)
                    with record_function("mmeval.generate"), gpu.span():
                        # a bad prompt fails its sample; a batch that does not fit is halved
                        preds = sizer.answer(lambda reqs: generate_checked(adapter, reqs), batch_requests)
                    batches.size = sizer.size
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
                    if first_answer is None:
                        first_answer = environment.process_age_s()
                    new_sizes = set(sizer.sizes_run[n_runs:]) - sizes_seen
                    if new_sizes:  # a batch size met for the first time: compiles and captures
                        sizes_seen |= new_sizes
                        warmup_s += time.perf_counter() - t_batch
                    else:
                        n_steady += len(batch)
        finally:
            progress.close()
            log.close()
        gpu_busy_s = gpu.total_s()
        return Answered(time.perf_counter() - started, len(state.pending), n_tokens, batch_size=sizer.size,
                        first_answer_s=first_answer, warmup_s=warmup_s, n_steady=n_steady, gpu_busy_s=gpu_busy_s)

    def _gather(self, answered: Answered) -> Answered:
        """Counts summed over ranks (the run's throughput), once every rank has finished answering."""
        n_samples, n_tokens, n_steady = self.dist.sum([answered.n_samples, answered.n_tokens, answered.n_steady])
        self.dist.barrier()
        return dataclasses.replace(answered, n_samples=n_samples, n_tokens=n_tokens, n_steady=n_steady)

    def _merge(self, state: TaskState, run_dir: Path) -> list[SampleRecord]:
        """Fold per-rank samples logs into the task's one (a no-op for a single process); the
        records of the plan's documents, in document order."""
        plan = state.plan
        state.done.update(merge_samples(run_dir, plan.task.name, [d.doc_id for d in plan.docs]))
        return [state.done[d.doc_id] for d in plan.docs if d.doc_id in state.done]

    def _grade(self, state: TaskState, records: list[SampleRecord], run_dir: Path) -> list[SampleRecord]:
        """The task's grading (an LLM judge), now that every answer is on disk; graded records
        replace their lines in the samples file (atomically), so a kill while grading loses no
        answer and regrading later (`mmeval score`) starts from them."""
        plan = state.plan
        graded = plan.task.grade(records, {d.doc_id: d for d in plan.docs}, plan.protocol, self.log)
        if len(graded) != len(records):
            raise RunError(f"task {plan.task.name}: grade() returned {len(graded)} records for {len(records)}")
        changed = {g.doc_id: g for g, r in zip(graded, records, strict=True) if g is not r}
        if changed:
            on_disk = read_all_samples(run_dir, plan.task.name)
            on_disk.update(changed)
            write_samples(run_dir, plan.task.name, on_disk, [d.doc_id for d in plan.docs])
            state.done.update(changed)
        return graded

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
        """The results file's `timings`: answering throughput over all ranks, this process's peak
        memory; then the batch size answered at, reading the data and loading the model (once per
        run), the command's time to this task's first answer, warm-up (the first batch at each
        size) and the throughput without it, and the share of the wall time the GPU had a batch's
        work in flight (`mmeval.gpu_busy`; None on the CPU)."""
        wall, n_done, n_tokens = answered.wall_s, answered.n_samples, answered.n_tokens
        steady_wall = wall - answered.warmup_s
        return {
            "wall_s": round(wall, 3),
            "samples_timed": int(n_done),
            "samples_per_s": round(n_done / wall, 3) if n_done and wall > 0 else None,
            "tokens_per_s": round(n_tokens / wall, 3) if n_done and wall > 0 else None,
            "peak_memory_mb": round(environment.peak_memory_mb(self.device), 1),
            "resumed_samples": resumed,
            "processes": self.dist.world_size,
            "batch_size": answered.batch_size,
            "data_s": self.data_s,
            "load_s": self.load_s,
            "first_answer_s": None if answered.first_answer_s is None else round(answered.first_answer_s, 3),
            "warmup_s": round(answered.warmup_s, 3),
            "steady_samples_per_s": round(answered.n_steady / steady_wall, 3)
            if answered.n_steady and steady_wall > 0 else None,
            "gpu_busy_pct": round(100.0 * answered.gpu_busy_s / wall, 1)
            if answered.gpu_busy_s is not None and wall > 0 else None,
        }


def _prefetched(pool: Executor, adapter: Adapter, requests: Sequence[Request], batches: Batches) -> Iterator[list[int]]:
    """Yield each batch (indices into `requests`) once its images are decoded (`adapter.prepare`),
    with the next batch's decoding already started in `pool`, so the model never waits on images.
    When the batch size changes meanwhile, `generate` prepares what the prefetch did not cover."""
    nxt = batches.peek()
    ahead = pool.submit(adapter.prepare, [requests[i] for i in nxt]) if nxt else None
    while batch := batches.take():
        with record_function("mmeval.wait_images"):
            ahead.result()
        nxt = batches.peek()
        ahead = pool.submit(adapter.prepare, [requests[i] for i in nxt]) if nxt else None
        yield batch


def _progress(total: int, desc: str, enabled: bool):
    """One bar per task on stderr: done/total, elapsed<ETA, samples/s."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=" samples", disable=not enabled or total == 0, dynamic_ncols=True,
                mininterval=1.0)
