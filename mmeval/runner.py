"""One evaluation run: plan (tasks x model x protocol) -> requests -> schedule -> generate ->
score -> append samples -> aggregate -> results file. Resumable: finished samples are read back
from the samples log and not asked again.
"""

from __future__ import annotations

import datetime as _dt
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from mmeval import environment
from mmeval.adapter import Adapter
from mmeval.data.sources import task_data_dir
from mmeval.errors import DataError, RunError
from mmeval.registry import check_protocol_name, get_model_class, get_task
from mmeval.distributed import DistContext, init_from_env, shard_by_group
from mmeval.results import RunManifest, SamplesLog, fingerprint, merge_samples, read_all_samples, write_json_atomic
from mmeval.scheduler import schedule
from mmeval.task import Task
from mmeval.types import Doc, Prediction, Request, SampleRecord


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


def resolve_protocol(task: Task, asked: str | None, adapter_cls: type[Adapter]) -> str:
    if asked is not None:
        return task.check_protocol(check_protocol_name(asked))
    preferred = adapter_cls.preferred_protocol
    return preferred if preferred in task.protocols else task.default_protocol


def load_task_docs(task: Task, data: Path | None, limit: int | None) -> list[Doc]:
    docs = task.load_docs(task_data_dir(task.name, data))
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


def summarize(task: Task, protocol: str, records: Sequence[SampleRecord], n_boot: int, seed: int) -> dict[str, Any]:
    """Metrics, their bootstrap 95% intervals, and the counts, from scored sample records."""
    from mmeval.report.statistics import bootstrap_ci

    scored = [r for r in records if r.error is None]
    scores = [r.scores for r in scored]
    metrics = task.aggregate(scores, protocol) if scores else {}
    wanted = task.ci_metrics(protocol)

    def statistic(sample: Sequence[dict]) -> dict[str, float]:
        m = task.aggregate(sample, protocol)
        return {k: v for k, v in m.items() if wanted is None or k in wanted}

    ci = bootstrap_ci(scores, statistic, n_boot=n_boot, seed=seed) if scores and n_boot > 0 else {}
    return {
        "task": task.name, "protocol": protocol, "n": len(scored), "n_errors": len(records) - len(scored),
        "metrics": metrics, "ci95": {k: [float(lo), float(hi)] for k, (lo, hi) in ci.items()},
        "headline": task.headline(protocol),
    }


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

    def run(self, adapter: Adapter | None = None) -> dict[str, dict[str, Any]]:
        cfg = self.config
        adapter_cls = get_model_class(cfg.model)
        plans = self.plan(adapter_cls)  # data problems surface before a model is loaded
        return self.run_plans(plans, adapter_cls, adapter)

    def run_plans(self, plans: list[TaskPlan], adapter_cls: type[Adapter],
                  adapter: Adapter | None = None) -> dict[str, dict[str, Any]]:
        """Run planned tasks (also used by `mmeval bench` with in-memory documents)."""
        cfg = self.config
        self.dist = init_from_env(cfg.device)
        self.device = self.dist.device(cfg.device)
        if adapter is None:
            adapter = adapter_cls.from_args(cfg.model_args, device=self.device)
        identity = adapter.identity()
        model_fp = fingerprint(identity)
        # the default folder is per model and protocol choice; a fixed --run-name is checked per task
        run_dir = cfg.output / (cfg.run_name or f"{cfg.model}_{fingerprint([identity, cfg.protocol])[:10]}")
        manifest = RunManifest(run_dir)
        manifest.bind_model(model_fp, identity)
        if self.dist.is_main:
            self.log(f"run directory: {run_dir}")
        results = {}
        for plan in plans:
            summary = self._run_task(plan, adapter, identity, run_dir, manifest)
            if summary is not None:
                results[plan.task.name] = summary
        return results

    def _run_task(self, plan: TaskPlan, adapter: Adapter, identity: dict, run_dir: Path,
                  manifest: RunManifest) -> dict[str, Any]:
        cfg, task, protocol, dist = self.config, plan.task, plan.protocol, self.dist
        description = generation_description(task, protocol, plan.requests)
        manifest.bind_task(task.name, fingerprint(description), description, write=dist.is_main)
        done = {k: r for k, r in read_all_samples(run_dir, task.name).items() if r.error is None}
        wanted = {d.doc_id for d in plan.docs}
        pending = [i for i, d in enumerate(plan.docs) if d.doc_id not in done]
        resumed = len(wanted & done.keys())
        if dist.is_main:
            self.log(f"{task.name} [{protocol}]: {len(plan.docs)} samples"
                     + (f", {resumed} already done, {len(pending)} to go" if resumed else "")
                     + (f", on {dist.world_size} processes" if dist.world_size > 1 else ""))
        if dist.world_size > 1:
            mine = shard_by_group([plan.requests[i] for i in pending], dist.world_size, dist.rank)
            pending = [pending[j] for j in mine]
            log = SamplesLog(run_dir / f"{task.name}.samples.rank{dist.rank}.jsonl")
        else:
            log = SamplesLog(run_dir / f"{task.name}.samples.jsonl")

        environment.reset_peak_memory(self.device)
        started = time.perf_counter()
        n_tokens = 0
        requests = [plan.requests[i] for i in pending]
        batches = [[pending[j] for j in b] for b in schedule(requests, cfg.batch_size)]
        progress = _progress(len(pending), f"{task.name}", cfg.progress and dist.is_main)
        try:
            with ThreadPoolExecutor(max_workers=1) as pool:
                ahead = pool.submit(adapter.prepare, [plan.requests[i] for i in batches[0]]) if batches else None
                for b, batch in enumerate(batches):
                    if ahead is not None:
                        with record_function("mmeval.wait_images"):
                            ahead.result()
                    if b + 1 < len(batches):  # decode the next batch's images while this one runs
                        ahead = pool.submit(adapter.prepare, [plan.requests[i] for i in batches[b + 1]])
                    batch_requests = [plan.requests[i] for i in batch]
                    with record_function("mmeval.generate"):
                        preds = adapter.generate(batch_requests)
                    if len(preds) != len(batch):
                        raise RunError(f"model {cfg.model} returned {len(preds)} predictions for {len(batch)} requests")
                    with record_function("mmeval.score_and_log"):
                        records = [self._record(task, protocol, plan.docs[i], plan.requests[i], p)
                                   for i, p in zip(batch, preds)]
                        log.append(records)
                    for r in records:
                        done[r.doc_id] = r
                        n_tokens += r.n_tokens
                    for req in batch_requests:
                        for ref in req.images:
                            ref.release()
                    progress.update(len(batch))
        finally:
            progress.close()
            log.close()
        wall = time.perf_counter() - started
        n_done, n_tokens = dist.sum([len(pending), n_tokens])
        dist.barrier()
        if not dist.is_main:
            return None
        done.update(merge_samples(run_dir, task.name, [d.doc_id for d in plan.docs]))

        records = [done[d.doc_id] for d in plan.docs if d.doc_id in done]
        summary = summarize(task, protocol, records, cfg.n_boot, cfg.seed)
        summary.update({
            "model": identity,
            "generation": description["generation"],
            "timings": {
                "wall_s": round(wall, 3),
                "samples_timed": int(n_done),
                "samples_per_s": round(n_done / wall, 3) if n_done and wall > 0 else None,
                "tokens_per_s": round(n_tokens / wall, 3) if n_done and wall > 0 else None,
                "peak_memory_mb": round(environment.peak_memory_mb(self.device), 1),
                "resumed_samples": resumed,
                "processes": dist.world_size,
            },
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

    @staticmethod
    def _record(task: Task, protocol: str, doc: Doc, request: Request, pred: Prediction) -> SampleRecord:
        if pred.error is not None:
            return SampleRecord(doc_id=doc.doc_id, prompt=request.prompt, prediction="", target=doc.target,
                                scores={}, error=pred.error)
        return SampleRecord(doc_id=doc.doc_id, prompt=request.prompt, prediction=pred.text, target=doc.target,
                            scores=task.score(doc, pred, protocol), candidate_probs=pred.candidate_probs,
                            n_tokens=pred.n_tokens)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="sample", disable=not enabled or total == 0, dynamic_ncols=True,
                mininterval=1.0)
