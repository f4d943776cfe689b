"""The `mmeval` command line: run, score, list, report, check (and the commands other modules add)."""

from __future__ import annotations

import contextlib
import errno
import json
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import click

from mmeval.errors import MMEvalError


def parse_kv(text: str | None, option: str) -> dict[str, str]:
    """`k=v,k2=v2` -> dict; a piece without '=' is an error naming the option."""
    out: dict[str, str] = {}
    for piece in filter(None, (p.strip() for p in (text or "").split(","))):
        if "=" not in piece:
            raise click.BadParameter(f"expected key=value pairs separated by commas, got {piece!r}", param_hint=option)
        key, value = piece.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def parse_task_args(text: str | None) -> dict[str, dict[str, str]]:
    """`--task-args mmvet.judge_url=http://...,textvqa.ocr=true` -> {task: {option: value}}."""
    out: dict[str, dict[str, str]] = {}
    for key, value in parse_kv(text, "--task-args").items():
        if "." not in key:
            raise click.BadParameter(f"expected TASK.OPTION=VALUE, got {key}={value}", param_hint="--task-args")
        task, opt = key.split(".", 1)
        out.setdefault(task, {})[opt] = value
    return out


def parse_batch_size(text: str | int) -> int | str:
    """`--batch-size`: a whole number, or `auto` (the largest batch that fits on CUDA; a CPU default
    on the CPU: `mmeval.batching`). Its range is checked with the other options
    (`mmeval.validation.check_run_options`)."""
    value = str(text).strip().lower()
    if value == "auto":
        return "auto"
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"expected a whole number or 'auto', got {text!r}",
                                 param_hint="--batch-size") from None


# Commands owned by other modules: name -> (module, attribute). Imported when named (or listed by
# --help); a module that fails to import is an error naming it, never a command that goes missing.
MODULE_COMMANDS = {
    "report": ("mmeval.report.commands", "report"),
    "check": ("mmeval.report.commands", "check"),
    "bench": ("mmeval.benchmark.commands", "bench"),
    "finetune": ("mmeval.finetune.commands", "finetune_command"),
    "synth": ("mmeval.synth.commands", "synth"),
}


# A disk that fills up or a folder that turns read-only is the machine, not the input: still one line.
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def one_line(message: object) -> str:
    """An error message on one line whatever it quotes from the input: control characters (a
    newline or carriage return in a field name, say) are shown escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(message))


class OneLineUsageError(click.ClickException):
    """A usage error (an option click could not parse) shown as one line, like the harness's own."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {one_line(self.message)}", err=True)


class MMEvalGroup(click.Group):
    """Turns the harness's own errors and click's usage errors into one line on stderr and exit code 2;
    loads MODULE_COMMANDS."""

    def main(self, *args, **kwargs):
        try:  # around main, not invoke: --help imports the module commands too
            return super().main(*args, **kwargs)
        except MMEvalError as exc:
            click.echo(f"error: {one_line(exc)}", err=True)
            sys.exit(2)
        except OSError as exc:
            if exc.errno not in DISK_ERRNOS:
                raise
            click.echo(f"error: {exc.filename}: {exc.strerror}" if exc.filename else f"error: a write failed: "
                       f"{exc.strerror}", err=True)
            sys.exit(2)

    def make_context(self, *args, **kwargs):
        with _one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _one_line_usage_errors():  # a sub-command's options are parsed in here
            return super().invoke(ctx)

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *MODULE_COMMANDS})

    def get_command(self, ctx, name):
        if name not in MODULE_COMMANDS:
            return super().get_command(ctx, name)
        from mmeval.errors import PluginImportError
        from mmeval.registry import import_or_fail

        module, attr = MODULE_COMMANDS[name]
        command = getattr(import_or_fail(module), attr, None)
        if not isinstance(command, click.Command):
            raise PluginImportError(f"module {module} has no click command '{attr}' (for `mmeval {name}`)")
        return command


@contextlib.contextmanager
def _one_line_usage_errors():
    try:
        yield
    except click.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `mmeval` alone prints its help
            raise
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        raise OneLineUsageError(" ".join(exc.format_message().split()) + where) from None


@click.group(cls=MMEvalGroup)
@click.version_option(package_name="mmeval")
def main() -> None:
    """mmeval: evaluate, train and gate multimodal Mamba models (VL-Mamba, Cobra).

    \b
    Example:
      mmeval run --model vl-mamba --tasks pope,gqa
    """


@main.command()
@click.option("--model", required=True, help="Model name (see `mmeval list models`).")
@click.option("--model-args", default="", help="k=v,... passed to the model (checkpoint=PATH_OR_ID, dtype=, ...).")
@click.option("--tasks", required=True, help="Comma-separated task names (see `mmeval list tasks`).")
@click.option("--protocol", default=None,
              help="llava | prismatic | lmms-eval (default: the model's own, where the task has it).")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Local data: a folder with one sub-folder per task, or one task's folder. Default: the hub.")
@click.option("--limit", type=int, default=None, help="Evaluate only the first N documents of each task.")
@click.option("--batch-size", default="auto", show_default=True,
              callback=lambda ctx, param, value: parse_batch_size(value),
              help="Requests per batch, or auto: on CUDA the largest that fits (measured on the first batch), "
                   "on the CPU 8.")
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda | cuda:N")
@click.option("--output", type=click.Path(path_type=Path), default=Path("results/runs"), show_default=True)
@click.option("--run-name", default=None,
              help="Run folder name (default: model name + a hash of the model and each task's inputs, data included).")
@click.option("--task-args", default="", help="TASK.OPTION=VALUE,... e.g. mmvet.judge_model=gpt-4-0613")
@click.option("--bootstrap", type=int, default=1000, show_default=True,
              help="Bootstrap resamples for 95% CIs (0: none).")
@click.option("--allow-errors", is_flag=True, help="Exit 0 even when some samples failed (e.g. unreadable images).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no messages: only errors and the final table.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as JSON on stdout (nothing else there; messages stay on stderr).")
@click.option("--num-processes", type=int, default=1, show_default=True,
              help="Data-parallel processes on this machine (one per GPU with --device cuda), through torchrun.")
def run(model, model_args, tasks, protocol, data, limit, batch_size, device, output, run_name, task_args,
        bootstrap, allow_errors, no_progress, quiet, as_json, num_processes):
    """Evaluate a model on benchmarks; write per-sample logs and a results file per task.

    \b
    Writes <output>/<run>/<task>.samples.jsonl (one line per sample, appended as they finish)
    and <output>/<run>/<task>.json (metrics with 95% CIs, model, config, timings, versions).
    Re-running the same command resumes: finished samples are not redone. Progress (one bar per
    task) and messages go to stderr, the final table to stdout (--json: the summary as JSON).

    \b
    Example:
      mmeval run --model vl-mamba --model-args checkpoint=ckpt/vl-mamba --tasks pope,gqa --data data/
      mmeval run --model cobra --tasks pope --device cuda --num-processes 2
      (the same: torchrun --nproc-per-node 2 -m mmeval run --model cobra --tasks pope --device cuda)
    """
    from mmeval.runner import RunConfig, Runner
    from mmeval.validation import check_run_options, parse_tasks

    # every option that needs no data is checked before torchrun, the demo model or any model starts
    task_names, task_options = parse_tasks(tasks), parse_task_args(task_args)
    check_run_options(task_names, task_options, limit, batch_size, device, output, run_name, bootstrap, num_processes)
    if num_processes > 1:
        sys.exit(relaunch_with_torchrun(num_processes))

    config = RunConfig(model=model, tasks=task_names,
                       model_args=parse_kv(model_args, "--model-args"), task_args=task_options,
                       protocol=protocol, data=data, limit=limit, batch_size=batch_size, device=device,
                       output=output, run_name=run_name, n_boot=bootstrap, progress=not (no_progress or quiet))
    from mmeval.synth.defaults import apply_embedded_default

    say = (lambda m: None) if quiet else (lambda m: click.echo(m, err=True))
    with run_output(quiet=quiet, as_json=as_json):
        # no checkpoint: the released checkpoint or the shipped demo model (on generated data), said in one line
        config = apply_embedded_default(config, log=say)
        results = Runner(config, log=say).run()
    if not results:  # a non-zero rank under torchrun: rank 0 reports
        return
    if as_json:
        click.echo(json.dumps(summary_json(config, results), indent=1, default=str))
    else:
        click.echo(format_summary(results))
    n_errors = sum(r["n_errors"] for r in results.values())
    if n_errors and not allow_errors:
        click.echo(f"error: {n_errors} sample(s) failed (see the samples files); metrics exclude them", err=True)
        sys.exit(3)


def relaunch_with_torchrun(n: int) -> int:
    """Run this same command under torchrun with n processes (the option itself dropped)."""
    import subprocess

    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--num-processes":
            skip = True
        elif not a.startswith("--num-processes="):
            argv.append(a)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
           "-m", "mmeval", *argv]
    return subprocess.call(cmd)


@contextlib.contextmanager
def run_output(quiet: bool, as_json: bool) -> Iterator[None]:
    """While a run works: each warning is shown once however often and from wherever it is raised
    (per batch, per task), none with --quiet; with --json, whatever anything prints to stdout goes to
    stderr (stdout holds only the JSON)."""
    with contextlib.ExitStack() as stack:
        if as_json:
            stack.enter_context(contextlib.redirect_stdout(sys.stderr))
        stack.enter_context(warnings.catch_warnings())  # restores the filters and showwarning on exit
        if quiet:
            warnings.simplefilter("ignore")
        else:
            warnings.showwarning = _once(warnings.showwarning)
        yield


def _once(show):
    """A warnings.showwarning that passes each (category, message) on once."""
    seen: set[tuple[type, str]] = set()

    def show_once(message, category, filename, lineno, file=None, line=None):
        if (category, str(message)) not in seen:
            seen.add((category, str(message)))
            show(message, category, filename, lineno, file, line)

    return show_once


def summary_json(config, results: dict) -> dict:
    """`--json`: each task's summary (the content of its results file) and where the run's files are."""
    runs = {r.get("run") for r in results.values()}
    run_dir = config.output / runs.pop() if len(runs) == 1 and None not in runs else None
    return {"run_dir": None if run_dir is None else str(run_dir), "tasks": results}


def format_summary(results: dict) -> str:
    from tabulate import tabulate

    rows = []
    for name, r in results.items():
        head = r["headline"]
        value = r["metrics"].get(head)
        ci = r.get("ci95", {}).get(head)
        rows.append([name, r["protocol"], head, "" if value is None else f"{value:.2f}",
                     "" if not ci else f"[{ci[0]:.2f}, {ci[1]:.2f}]", r["n"], r["n_errors"]])
    return tabulate(rows, headers=["task", "protocol", "metric", "value", "95% CI", "n", "errors"])


def parse_score_task_args(text: str | None, task: str) -> dict[str, str]:
    """`score`'s --task-args: the syntax of `run` (`vqav2.split=val`) or the bare option (`split=val`);
    a prefix naming another task is an error."""
    out: dict[str, str] = {}
    for key, value in parse_kv(text, "--task-args").items():
        if "." in key:
            prefix, key = key.split(".", 1)
            if prefix != task:
                raise click.BadParameter(f"{prefix}.{key}={value} is an option of task {prefix}, and this command "
                                         f"scores {task} (write {task}.{key}=... or {key}=...)",
                                         param_hint="--task-args")
        out[key] = value
    return out


@main.command()
@click.option("--task", required=True, help="Task name.")
@click.option("--predictions", required=True, multiple=True, type=click.Path(path_type=Path),
              help="Predictions file; repeat for several (e.g. one per rank). Formats, told from the content: "
                   'mmeval JSONL ({"doc_id": ..., "prediction": ...}; a run\'s samples file), LLaVA-1.5 answer files, '
                   "lmms-eval --log_samples files, vlm-evaluation results+rank-N.json or metrics.json.")
@click.option("--data", type=click.Path(path_type=Path), default=None, help="Local data folder (default: the hub).")
@click.option("--protocol", default=None, help="Protocol to score under (default: the task's default).")
@click.option("--task-args", default="", help="TASK.OPTION=VALUE,... as for run (e.g. vqav2.split=val); "
                                               "OPTION=VALUE works too.")
@click.option("--metadata", type=click.Path(path_type=Path), default=None,
              help="vlm-evaluation's dataset metadata (datasets/pope/metadata-full.json): POPE results name "
                   "questions by a hash, this file maps it to split and question id.")
@click.option("--output", type=click.Path(path_type=Path), default=None,
              help="Write the results JSON here too (a folder: FOLDER/<task>.json).")
@click.option("--bootstrap", type=int, default=1000, show_default=True)
def score(task, predictions, data, protocol, task_args, metadata, output, bootstrap):
    """Score saved predictions without a model (rescoring, or another system's outputs).

    \b
    Example:
      mmeval score --task pope --predictions results/runs/mock_1a2b/pope.samples.jsonl --data data/ --protocol lmms-eval
      mmeval score --task pope --predictions eval/pope/answers/llava-v1.5-13b.jsonl --data eval/ --protocol llava
      mmeval score --task vqav2 --task-args vqav2.split=val --protocol lmms-eval \\
        --predictions 20250101_120000_samples_vqav2_val.jsonl --data data/
    """
    from mmeval.registry import check_protocol_name, get_task
    from mmeval.rescore import score_file
    from mmeval.results import write_json_atomic
    from mmeval.validation import check_n_boot, check_output_file, coverage_line

    check_n_boot(bootstrap)
    t = get_task(task, **parse_score_task_args(task_args, task))
    target = check_output_file(output, task) if output else None  # before anything is computed
    proto = t.check_protocol(check_protocol_name(protocol)) if protocol else t.default_protocol
    summary, _ = score_file(t, proto, list(predictions), data, n_boot=bootstrap, metadata=metadata,
                            log=lambda m: click.echo(m, err=True))
    if target is not None:
        write_json_atomic(target, summary)
    warning = coverage_line(task, summary["coverage"]["predictions"], summary["coverage"]["docs"])
    if warning:
        click.echo(warning, err=True)
    click.echo(format_summary({task: summary}))
    click.echo(json.dumps(summary["metrics"], indent=1))


@main.command(name="list")
@click.argument("what", type=click.Choice(["tasks", "models", "protocols"]))
def list_(what):
    """List the tasks (with their protocols), the models (with their options), or the protocols.

    \b
    Example:
      mmeval list tasks
    """
    from mmeval.registry import model_classes, task_classes
    from mmeval.task import PROTOCOLS

    if what == "tasks":
        for name, cls in task_classes().items():
            protos = ", ".join(p + ("*" if p == cls.default_protocol else "") for p in cls.protocols)
            click.echo(f"{name:15s} {protos:32s} {cls.description}")
    elif what == "models":
        for name, cls in model_classes().items():
            click.echo(f"{name:10s} {cls.description}")
            for opt, text in cls.options.items():
                click.echo(f"    {opt}: {text}")
    else:
        for p in PROTOCOLS:
            click.echo(p)


if __name__ == "__main__":
    main()
