"""Validation at the edge: what a user hands `mmeval run` and `mmeval score` is checked once, before a
model is loaded or a result file written, and a problem is one line that names the option, file or
field and what was expected (an `MMEvalError`: the CLI prints it and exits 2).

- `check_run_options`: `mmeval run`'s options that need no data (tasks, task-args, limit, batch
  size, device, output folder), before the demo model, torchrun or the model are started.
- `check_output_file`: where `mmeval score --output` writes (a folder gets `<task>.json`).
- `prediction_from_record`: one normalised prediction record (a run's samples line, or another
  harness's answer read into the same fields) -> a `Prediction`, or a DataError naming the line.
- `coverage_line`: predictions for fewer documents than the task has, said with the counts.
- `generate_checked`: a request the model cannot be given (a prompt that is not encodable text,
  e.g. a lone surrogate read from a JSON escape) fails that sample, not the run.

Column types of the data are checked where the data is read (`mmeval.data.sources.check_table`),
model-argument types in `mmeval.adapter` (`parse_int`, `parse_float`, `parse_device`, ...).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmeval.errors import DataError, OptionError, RunError
from mmeval.types import Prediction, Request


# ---------------------------------------------------------------------------------------------- mmeval run
def parse_tasks(text: str) -> list[str]:
    """`--tasks a,b` -> names in order, each once; naming none is an error."""
    names = list(dict.fromkeys(t.strip() for t in (text or "").split(",") if t.strip()))
    if not names:
        raise OptionError(f"--tasks {text!r}: names no task; e.g. --tasks pope,gqa (see `mmeval list tasks`)")
    return names


def check_run_options(tasks: Sequence[str], task_args: Mapping[str, Mapping[str, str]], limit: int | None,
                      batch_size: int | str, device: str, output: Path, run_name: str | None, n_boot: int,
                      num_processes: int = 1) -> None:
    """Everything about `mmeval run`'s options that can be checked without data or a model."""
    from mmeval.adapter import parse_device
    from mmeval.registry import task_classes

    known = task_classes()
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise OptionError(f"--tasks: unknown task '{unknown[0]}'; known tasks: {', '.join(known)}")
    for task, options in task_args.items():
        if task not in tasks:
            example = ",".join(f"{task}.{k}={v}" for k, v in options.items())
            what = "not among --tasks" if task in known else "not a task"
            raise OptionError(f"--task-args {example}: {task} is {what} (the tasks run: {', '.join(tasks)})")
    if limit is not None and limit < 1:
        raise OptionError(f"--limit {limit}: expected a positive number of documents per task "
                          "(leave it out to evaluate all)")
    if batch_size != "auto" and batch_size < 1:
        raise OptionError(f"--batch-size {batch_size}: expected a positive integer or 'auto'")
    check_n_boot(n_boot)
    if num_processes < 1:
        raise OptionError(f"--num-processes {num_processes}: expected a positive integer")
    parse_device(device, "--device")
    check_writable_dir(output, "--output")
    if run_name is not None:
        if not run_name.strip() or Path(run_name).name != run_name or run_name in (".", ".."):
            raise OptionError(f"--run-name {run_name!r}: expected a folder name (no '/')")
        check_writable_dir(output / run_name, "--run-name")


def check_n_boot(n_boot: int, option: str = "--bootstrap") -> None:
    if n_boot < 0:
        raise OptionError(f"{option} {n_boot}: expected 0 (no intervals) or a positive number of resamples")


def check_writable_dir(path: Path, option: str) -> None:
    """`path` is a folder this process can write in, or can be created as one. Nothing is created:
    a later error leaves no empty folders. `os.access` asks the kernel, so a read-only mount is
    refused even for root, and a folder root may write in despite its mode bits is accepted."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OptionError(f"{option} {path}: is a file; expected a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OptionError(f"{option} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        why = "read-only file system" if _read_only_mount(existing) else "permission denied"
        raise OptionError(f"{option} {path}: cannot write in {existing} ({why})")


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


# -------------------------------------------------------------------------------------------- mmeval score
def check_output_file(output: Path, task: str) -> Path:
    """The file `mmeval score --output` writes: the path itself, or `<output>/<task>.json` when it is
    a folder; checked before anything is computed."""
    target = output / f"{task}.json" if output.is_dir() else output
    if target.is_dir():
        raise OptionError(f"--output {output}: {target} is a folder")
    check_writable_dir(target.parent, "--output")
    return target


def prediction_from_record(obj: Mapping[str, Any], where: str) -> Prediction:
    """One normalised prediction record -> the model's answer, after checking every field.

    `prediction` must be text: a null would read as the empty answer, which some protocols' rules
    count (LLaVA's POPE rule reads "" as "yes"); a sample the model could not answer carries
    `error` instead. `candidate_probs`, if given, map each candidate to a probability in [0, 1];
    `n_tokens` is a count. Anything else is a DataError naming `where` (file:line) and the field."""
    error = obj.get("error")
    if error is not None and not isinstance(error, str):
        raise DataError(f"{where}: error is {_kind(error)}; expected text (or null)")
    if error:
        return Prediction(error=error)
    if "prediction" not in obj:
        raise DataError(f"{where}: no prediction field (a sample that failed gives an error field instead)")
    text = obj["prediction"]
    if not isinstance(text, str):
        hint = " (a sample that failed gives an error field instead)" if text is None else ""
        raise DataError(f"{where}: prediction is {_kind(text)}; expected text{hint}")
    return Prediction(text=text, candidate_probs=_candidate_probs(obj.get("candidate_probs"), where),
                      n_tokens=_count(obj.get("n_tokens"), "n_tokens", where))


def _candidate_probs(value: Any, where: str) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise DataError(f"{where}: candidate_probs is {_kind(value)}; expected an object of candidate: probability")
    out = {}
    for key, p in value.items():
        number = isinstance(p, (int, float)) and not isinstance(p, bool)
        if not number or not math.isfinite(p) or not 0.0 <= p <= 1.0:
            got = repr(p) if number else _kind(p)
            raise DataError(f"{where}: candidate_probs[{key!r}] is {got}; expected a probability between 0 and 1")
        out[str(key)] = float(p)
    return out


def _count(value: Any, field: str, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(f"{where}: {field} is {value!r}; expected a count (an integer >= 0)")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"[:80]


def coverage_line(task: str, n_predictions: int, n_docs: int) -> str | None:
    """One line when predictions cover fewer documents than the task has (None when they cover all)."""
    if n_predictions >= n_docs:
        return None
    return (f"warning: {task}: predictions for {n_predictions} of {n_docs} documents "
            f"({100.0 * n_predictions / n_docs:.1f}%); the metrics cover those {n_predictions} only, "
            f"the other {n_docs - n_predictions} are not counted")


# ------------------------------------------------------------------------------------------- per sample
def request_problem(request: Request) -> str | None:
    """Why a request cannot be given to a model (its prompt is not encodable text), or None."""
    try:
        request.prompt.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start:exc.end]
        return (f"prompt is not valid text ({exc.reason}: {bad!r} at character {exc.start}); "
                "the data file holds an invalid code point")
    return None


def generate_checked(adapter, requests: Sequence[Request]) -> list[Prediction]:
    """`adapter.generate` for the requests it can be given; the others get a Prediction with the
    error, so one bad sample fails alone (it is recorded, counted, and retried on the next run)."""
    problems = [request_problem(r) for r in requests]
    asked = [r for r, p in zip(requests, problems, strict=True) if p is None]
    answers = list(adapter.generate(asked)) if asked else []
    if len(answers) != len(asked):
        raise RunError(f"model {getattr(adapter, 'name', '?')} returned {len(answers)} predictions "
                       f"for {len(asked)} requests")
    it = iter(answers)
    return [Prediction(error=p) if p is not None else next(it) for p in problems]
