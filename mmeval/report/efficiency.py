"""Efficiency beside accuracy: headline metric against measured throughput and peak memory.

One row per (run, task) from the result files' ``timings`` (samples/s, tokens/s, peak memory)
and ``metrics[headline]``, and a PNG in the spirit of Cobra's speed figure: for each task, the
headline metric against samples/s, tokens/s and peak memory, one labelled point per run.
Matplotlib is imported lazily with the Agg backend (no display needed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mmeval.report.loading import TaskResult, as_number, format_value, load_results
from mmeval.report.render import Table

AXES = [("samples_per_s", "samples/s"), ("tokens_per_s", "tokens/s"), ("peak_memory_mb", "peak memory (MB)")]


@dataclass
class EffRow:
    run: str
    model: str
    task: str
    protocol: str
    metric: str
    value: float | None
    samples_per_s: float | None
    tokens_per_s: float | None
    peak_memory_mb: float | None
    device: str


def efficiency_rows(results: Iterable[TaskResult], tasks: list[str] | None = None,
                    protocol: str | None = None) -> list[EffRow]:
    rows = []
    for r in results:
        if (tasks and r.task not in tasks) or (protocol and r.protocol != protocol):
            continue
        t = r.timings
        rows.append(EffRow(r.run, r.model_name, r.task, r.protocol, r.headline or "", r.metric(),
                           as_number(t.get("samples_per_s")), as_number(t.get("tokens_per_s")),
                           as_number(t.get("peak_memory_mb")), str(r.data.get("device", ""))))
    rows.sort(key=lambda e: (e.task, e.protocol, e.run))
    return rows


def efficiency_table(rows: list[EffRow]) -> Table:
    header = ["task", "protocol", "run", "model", "metric", "value", "samples/s", "tokens/s",
              "peak memory (MB)", "device"]
    body = [[e.task, e.protocol, e.run, e.model, e.metric, format_value(e.value),
             format_value(e.samples_per_s, 2), format_value(e.tokens_per_s, 1),
             format_value(e.peak_memory_mb, 0), e.device] for e in rows]
    return Table(header=header, rows=body, numeric={5, 6, 7, 8},
                 notes=[("Throughput and memory as measured by the runner on the device shown; "
                         "compare only rows measured on the same device.")])


def plot_efficiency(rows: list[EffRow], path: str | Path) -> Path:
    """Write the PNG; one subplot row per task, columns = samples/s, tokens/s, peak memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    tasks = sorted({(e.task, e.protocol) for e in rows}) or [("(no results)", "")]
    fig, axs = plt.subplots(len(tasks), len(AXES), figsize=(4 * len(AXES), 3 * len(tasks)), squeeze=False)
    for i, (task, proto) in enumerate(tasks):
        sel = [e for e in rows if e.task == task and e.protocol == proto]
        for j, (attr, label) in enumerate(AXES):
            ax = axs[i][j]
            pts = [(getattr(e, attr), e.value, e.run) for e in sel
                   if getattr(e, attr) is not None and e.value is not None]
            for x, y, name in pts:
                ax.scatter([x], [y])
                ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.set_xlabel(label)
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ylabel = f"{task} ({proto})" + (f" {sel[0].metric}" if sel and sel[0].metric else "")
            ax.set_ylabel(ylabel, fontsize=8)
            ax.grid(alpha=0.3)
    fig.suptitle("Accuracy vs measured throughput and memory")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def render_efficiency(results_paths: str | Path | Iterable, tasks: list[str] | None = None,
                      protocol: str | None = None) -> tuple[list[EffRow], Table]:
    rows = efficiency_rows(load_results(results_paths), tasks, protocol)
    return rows, efficiency_table(rows)
