"""Does a model answer from the picture? Held-out generated questions (`mmeval.synth.training` with
another seed than the demo's training set), each asked with its own picture and with the picture of
the next question in the batch; per task, the share whose first answer token is right and the mean
answer-token loss. A model that reads the picture scores well above chance with the right picture
and near chance with the wrong one; the same score both ways means it answers from the question
alone. This is how the demo settings were chosen (docs/quickstart.md).

    python bench/demo_probe.py --model vl-mamba --checkpoint mmeval/synth/demo_weights/vl-mamba
    python bench/demo_probe.py --model cobra --checkpoint mmeval/synth/demo_weights/cobra --out probe.json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HELD_OUT_SEED = 101  # the demo trains on seed 0 (+ the training offset); the benchmarks use seed 0


def probe(family: str, model, tokenizer, rows: list[dict], image_dir: str | Path, per_task: int = 120,
          batch_size: int = 64, device: str = "cpu") -> dict[str, dict[str, dict[str, float]]]:
    """{task: {"right" | "shuffled": {"accuracy", "loss", "n"}}} over the first `per_task` rows of each
    task (a row's task is its id up to the first '-', as `build_training_set` names them)."""
    from mmeval.finetune.collate import IGNORE_INDEX, Collator
    from mmeval.finetune.data import ConversationDataset
    from mmeval.finetune.specs import get_spec

    spec = get_spec(family)
    model.eval()
    by_task: dict[str, list[dict]] = {}
    for r in rows:
        by_task.setdefault(r["id"].split("-")[0], []).append(r)
    fmt = spec.formatter(model, tokenizer, "chat", 256)
    collate = Collator(pad_id=spec.pad_id(tokenizer), image_first=spec.image_first)
    vocab = spec.loss_vocab(model)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for task, task_rows in sorted(by_task.items()):
        ds = ConversationDataset(task_rows[:per_task], str(image_dir), fmt, spec.image_transform(model))
        out[task] = {}
        for mode in ("right", "shuffled"):
            loss_sum, tokens, correct, n = 0.0, 0, 0, 0
            for start in range(0, len(ds), batch_size):
                batch = collate([ds[i] for i in range(start, min(len(ds), start + batch_size))])
                if mode == "shuffled":  # every question gets its neighbour's picture
                    pv, perm = batch["pixel_values"], torch.roll(torch.arange(len(batch["input_ids"])), 1)
                    batch["pixel_values"] = {k: v[perm] for k, v in pv.items()} if isinstance(pv, dict) else pv[perm]
                with torch.no_grad():
                    o = spec.forward(model, batch, device)
                logits = o.logits[:, :-1, :vocab].float()
                target = o.labels[:, 1:].to(logits.device)
                mask = target != IGNORE_INDEX
                ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none")
                loss_sum, tokens = loss_sum + float((ce * mask).sum()), tokens + int(mask.sum())
                pred = logits.argmax(-1)
                for b in range(target.shape[0]):
                    first = mask[b].nonzero()
                    if len(first):
                        p = int(first[0])
                        correct, n = correct + int(pred[b, p] == target[b, p]), n + 1
            out[task][mode] = {"accuracy": 100.0 * correct / max(1, n), "loss": loss_sum / max(1, tokens), "n": n}
    return out


def held_out_rows(data: Path | None, scale: float) -> tuple[list[dict], Path]:
    """(rows, image folder) of the held-out set in `data` (written there first when missing)."""
    from mmeval.synth.training import TRAIN_FILE, build_training_set

    data = data or Path(tempfile.mkdtemp(prefix="mmeval-probe-"))
    if not (data / TRAIN_FILE).is_file():
        build_training_set(data, seed=HELD_OUT_SEED, scale=scale)
    return json.loads((data / TRAIN_FILE).read_text()), data / "images"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=["vl-mamba", "cobra"])
    ap.add_argument("--checkpoint", required=True, help="a demo (or finetune) checkpoint folder")
    ap.add_argument(
        "--data", type=Path, help="held-out set folder (written there when missing; default: a temp folder)"
    )
    ap.add_argument(
        "--scale", type=float, default=1.0, help="held-out questions = the benchmarks' default counts x this"
    )
    ap.add_argument("--per-task", type=int, default=120)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, help="write the results as JSON")
    args = ap.parse_args(argv)
    from mmeval.finetune.specs import get_spec

    ckpt = Path(args.checkpoint)
    if not ckpt.is_dir():
        raise SystemExit(f"--checkpoint: {ckpt} is not a folder")
    model, tokenizer = get_spec(args.model).load(ckpt, args.device, {})
    rows, images = held_out_rows(args.data, args.scale)
    res = probe(args.model, model.float(), tokenizer, rows, images, args.per_task, device=args.device)
    for task, r in res.items():
        print(f"{task:14s} n={r['right']['n']:4d}  first answer token right: {r['right']['accuracy']:5.1f} "
              f"with its picture, {r['shuffled']['accuracy']:5.1f} with another  (loss {r['right']['loss']:.3f} / "
              f"{r['shuffled']['loss']:.3f})")
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
