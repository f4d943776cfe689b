"""`mmeval synth`: the click command (wired into mmeval/cli.py by its owner)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("synth")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write: one sub-folder per task (what `mmeval run --data` takes).")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same files.")
@click.option("--n", "n", default=None,
              help="Questions per task: N for every task, or TASK=N,... (default: 120 VQAv2, 150 POPE, ...; "
                   "MMBench counts questions before their rotations).")
@click.option("--tasks", default=None, help="Only these tasks (comma-separated; default: all ten).")
@click.option("--train", "train", is_flag=True,
              help="Also write a LLaVA-format training set (other pictures) to OUT/train/.")
@click.option("--train-scale", type=float, default=20.0, show_default=True,
              help="Training questions = the default counts x this.")
def synth(out, seed, n, tasks, train, train_scale):
    """Write mini versions of the ten benchmarks in their real layouts, with generated pictures.

    Pictures of coloured shapes (colours, shapes, counts, left/right) and rendered words, with known
    answers; each task's files are written by the task's own writer, in the layout its loader reads
    (lmms-lab parquet, or VSR's official test.jsonl + images/). OUT/synth.json records the seed, the
    counts and each task's chance level.

    \b
    Example:
      mmeval synth --out data/synth --seed 0
      mmeval run --model mock --tasks pope,gqa,vsr --data data/synth
      mmeval synth --out data/synth --n 40 --train        # + data/synth/train/train.json and images/
    """
    from mmeval.synth.benchmarks import TASKS, write_benchmarks

    chosen = tuple(t.strip() for t in tasks.split(",") if t.strip()) if tasks else TASKS
    unknown = [t for t in chosen if t not in TASKS]
    if unknown:
        raise click.BadParameter(f"unknown task(s) {', '.join(unknown)}; known: {', '.join(TASKS)}",
                                 param_hint="--tasks")
    try:
        manifest = write_benchmarks(out, seed=seed, counts=n, tasks=chosen, log=click.echo)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--n") from None
    for task, info in manifest["tasks"].items():
        chance = "n/a" if info["chance"] is None else f"{info['chance']:g}"
        click.echo(f"{task:14s} chance {chance:>6s}  ({info['chance_metric']})")
    if train:
        from mmeval.synth.training import build_training_set

        res = build_training_set(out / "train", seed=seed, scale=train_scale, tasks=chosen, log=click.echo)
        click.echo(f"training set: {res['file']} ({res['n']} conversations), images in {res['images']}")
    click.echo(f"wrote {out}; try: mmeval run --model mock --tasks {','.join(chosen)} --data {out}"
               + (" --task-args vqav2.split=val" if "vqav2" in chosen else ""))
