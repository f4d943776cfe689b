"""The training loop: assistant-token next-token loss, AdamW, linear warmup + cosine decay, gradient
accumulation and clipping, bf16 autocast on CUDA (fp32 on CPU), DDP / FSDP (torch's own) under
torchrun (gloo on CPU), checkpoints in each model's released layout + `trainer_state.pt`, exact resume.

Loss normalisation: each optimizer step's loss is the sum of the token losses of every labelled
position of the *global* batch divided by their number (counted before the forward pass and summed
over processes), so it does not depend on how the batch is split over processes and accumulation
micro-batches (LLaVA/HF average per-micro-batch means instead, which does). DDP/FSDP average
gradients over ranks, so each rank back-propagates ``world_size * sum / global_count``.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader

from mmeval.finetune.collate import IGNORE_INDEX, Collator
from mmeval.finetune.data import BatchPlan, ConversationDataset
from mmeval.finetune.recipes import Recipe
from mmeval.finetune.specs import ModelSpec, get_spec

STATE_FILE = "trainer_state.pt"
STRATEGIES = ("single", "ddp", "fsdp")


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # per optimizer step (this run and, on resume, before)
    step: int = 0
    total_steps: int = 0
    output_dir: Path | None = None
    last_checkpoint: Path | None = None
    model: Any = None
    tokenizer: Any = None


# ---- small helpers -----------------------------------------------------------------------------
def lr_lambda_factory(recipe: Recipe, total_steps: int):
    warm = recipe.warmup_steps(total_steps)

    def f(step: int) -> float:  # multiplier of the peak lr for the update that follows `step` updates
        if step < warm:
            return step / max(1, warm)
        if recipe.lr_scheduler == "constant":
            return 1.0
        progress = (step - warm) / max(1, total_steps - warm)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return f


def param_groups(model, recipe: Recipe):
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if (p.ndim >= 2 or recipe.decay_1d) else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def rng_state() -> dict:
    s = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def set_rng_state(s: dict) -> None:
    random.setstate(s["python"])
    np.random.set_state(s["numpy"])
    torch.set_rng_state(s["torch"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor, vocab: int | None = None) -> tuple[torch.Tensor, int]:
    """Sum of next-token cross-entropies over labelled positions (labels[:, 1:] != -100), and their count."""
    lg = logits[:, :-1]
    if vocab is not None:
        lg = lg[..., :vocab]
    tgt = labels[:, 1:].to(lg.device)
    loss = F.cross_entropy(lg.float().reshape(-1, lg.shape[-1]), tgt.reshape(-1), ignore_index=IGNORE_INDEX,
                           reduction="sum")
    return loss, int((tgt != IGNORE_INDEX).sum())


def _dist_info() -> tuple[int, int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return 0, 1, 0


def _setup_distributed(strategy: str, device: str) -> tuple[int, int, int]:
    if strategy == "single":
        return 0, 1, 0
    if not dist.is_initialized():
        if "RANK" not in os.environ:
            raise RuntimeError(f"--strategy {strategy} needs torchrun (RANK/WORLD_SIZE/MASTER_ADDR in the environment)")
        backend = "nccl" if device == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return _dist_info()


def _all_sum(t: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _latest_checkpoint(output: Path) -> Path | None:
    cands = sorted(output.glob("checkpoint-*/" + STATE_FILE))
    best, best_step = None, -1
    for c in cands + ([output / STATE_FILE] if (output / STATE_FILE).is_file() else []):
        try:
            step = int(torch.load(c, map_location="cpu", weights_only=False)["step"])
        except Exception:
            continue
        if step > best_step:
            best, best_step = c.parent, step
    return best


# ---- model wrapping -----------------------------------------------------------------------------
def _wrap(model, spec: ModelSpec, strategy: str, device: torch.device):
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                   find_unused_parameters=True)  # text-only batches leave the projector unused
    if strategy == "fsdp":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) \
            if device.type == "cuda" else MixedPrecisionPolicy()
        # one FSDP unit per Mamba block (run by every rank on every batch); projector and towers stay in
        # the root unit: a text-only batch on one rank skips the projector, so a unit of its own would
        # leave the ranks' all-gathers unmatched
        for layer in spec.groups(model)["lm"].backbone.layers:
            fully_shard(layer, mp_policy=mp)
        fully_shard(model, mp_policy=mp)
        return model
    return model


def _full_state_dict(model) -> dict:
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
    )

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


# ---- the loop -------------------------------------------------------------------------------------
def finetune(model_name: str, recipe: Recipe, data, image_dir=None, output_dir="finetune-out", *,
             tiny: bool = False, init: str | None = None, options: dict | None = None,
             device: str | None = None, strategy: str = "single", max_steps: int | None = None,
             stop_after: int | None = None, resume: str | None = None, progress: bool = True,
             model=None, tokenizer=None) -> TrainResult:
    """Train `model_name` ("vl-mamba" | "cobra") with `recipe` on LLaVA-format `data` (a JSON path or rows).

    `max_steps` fixes the schedule length (default: recipe.max_steps or epochs x batches per epoch);
    `stop_after` ends the run early after that many optimizer steps (checkpoint written) without
    changing the schedule -- `resume=DIR` (or "auto": latest in output_dir) continues it exactly."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    spec = get_spec(model_name)
    options = dict(options or {})
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    rank, world, local = _setup_distributed(strategy, device)
    dev = torch.device("cuda", local) if device == "cuda" else torch.device("cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    out = Path(output_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)

    state = None
    if resume:
        rdir = _latest_checkpoint(out) if resume == "auto" else Path(resume)
        if rdir is not None:
            state = torch.load(rdir / STATE_FILE, map_location="cpu", weights_only=False)
            recipe = Recipe(**{**state["recipe"], "trainable": tuple(state["recipe"]["trainable"]),
                               "save_every": recipe.save_every, "num_workers": recipe.num_workers,
                               "tensorboard": recipe.tensorboard})
            if state["world_size"] != world and strategy == "fsdp":
                raise ValueError(f"FSDP resume needs the same number of processes ({state['world_size']})")
            model, tokenizer = spec.load(rdir, "cpu", options)
        elif resume != "auto":
            raise FileNotFoundError(f"no {STATE_FILE} in {resume}")

    if model is None:
        model, tokenizer = spec.build(tiny, init, options, "cpu", recipe.seed, recipe.stage)
    model = model.to(dev).float()
    spec.set_trainable(model, recipe.trainable)
    model.train()
    groups = spec.groups(model)
    for name, mod in groups.items():
        if name not in recipe.trainable:
            mod.eval()

    # data
    formatter = spec.formatter(model, tokenizer, recipe.template, recipe.max_length)
    dataset = ConversationDataset(data, image_dir, formatter, spec.image_transform(model))
    plan = BatchPlan(dataset.lengths, recipe.global_batch_size, seed=recipe.seed,
                     group_by_modality=recipe.group_by_modality_length)
    accum = recipe.accumulation(world)
    if strategy == "fsdp" and len({n > 0 for n in dataset.lengths}) > 1:
        # FSDP's collectives need every rank to run the same modules per micro-batch; a text-only
        # micro-batch skips the projector/towers while another rank's image batch runs them.
        raise ValueError("--strategy fsdp does not support data mixing image and text-only samples yet; "
                         "use --strategy ddp (or split the data)")
    collator = Collator(pad_id=spec.pad_id(tokenizer), image_first=spec.image_first)
    steps_per_epoch = len(plan)
    total_steps = int(max_steps or (state or {}).get("total_steps") or recipe.max_steps
                      or recipe.epochs * steps_per_epoch)

    wrapped = _wrap(model, spec, strategy, dev)
    opt_model = wrapped if strategy == "fsdp" else model
    optimizer = torch.optim.AdamW(param_groups(opt_model, recipe), lr=recipe.learning_rate,
                                  betas=(recipe.adam_beta1, recipe.adam_beta2), eps=recipe.adam_eps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda_factory(recipe, total_steps))
    trainable = [p for p in opt_model.parameters() if p.requires_grad]

    step, epoch, offset, losses = 0, 0, 0, []
    if state is not None:
        if strategy == "fsdp":
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_optimizer_state_dict,
            )

            set_optimizer_state_dict(wrapped, optimizer, state["optimizer"],
                                     options=StateDictOptions(full_state_dict=True))
        else:
            optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, epoch, offset, losses = state["step"], state["epoch"], state["offset"], list(state["losses"])
        set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
    else:
        torch.manual_seed(recipe.seed + rank)
        random.seed(recipe.seed + rank)
        np.random.seed((recipe.seed + rank) % 2**32)

    writer = None
    if recipe.tensorboard and rank == 0:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tensorboard"))
        except Exception as exc:  # tensorboard is optional
            print(f"[finetune] tensorboard logging off: {type(exc).__name__}: {exc}")
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=step, desc=f"{model_name} {recipe.stage}", dynamic_ncols=True)

    use_amp = dev.type == "cuda" and recipe.mixed_precision == "bf16"
    vocab = spec.loss_vocab(model)
    result = TrainResult(losses=losses, total_steps=total_steps, output_dir=out, model=model, tokenizer=tokenizer)
    stop_at = min(total_steps, stop_after) if stop_after else total_steps
    log_file = out / "train_log.jsonl"

    def save(where: Path):
        _save_checkpoint(where, spec, model, wrapped, tokenizer, optimizer, scheduler, recipe, options, strategy,
                         dict(step=step, epoch=epoch, offset=offset, total_steps=total_steps, losses=losses,
                              world_size=world), rank, world)
        result.last_checkpoint = where

    while step < stop_at:
        batches = plan.epoch(epoch)
        micro = [mb for gb in batches[offset:] for mb in BatchPlan.split(gb, rank, world, recipe.per_device_batch_size)]
        loader = DataLoader(dataset, batch_sampler=micro, collate_fn=collator, num_workers=recipe.num_workers,
                            pin_memory=dev.type == "cuda")
        it = iter(loader)
        this_epoch = epoch
        while step < stop_at and epoch == this_epoch:
            t0 = time.perf_counter()
            mbs = [next(it) for _ in range(accum)]
            count = _all_sum(torch.tensor(float(sum(mb["n_targets"] for mb in mbs)), dtype=torch.float64), world)
            denom = max(float(count), 1.0)
            loss_sum = torch.zeros((), dtype=torch.float64)
            tokens = 0
            for j, mb in enumerate(mbs):
                last = j == len(mbs) - 1
                if strategy == "ddp" and not last:
                    sync = wrapped.no_sync()
                else:
                    sync = contextlib.nullcontext()
                    if strategy == "fsdp":
                        wrapped.set_requires_gradient_sync(last)
                with sync:
                    with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_amp):
                        o = spec.forward(wrapped, mb, dev)
                    s, n = token_loss_sum(o.logits, o.labels, vocab)
                    if n != mb["n_targets"]:
                        raise RuntimeError(f"label count mismatch: model {n} vs collator {mb['n_targets']}")
                    (s * (world / denom)).backward()
                loss_sum += s.detach().double().cpu()
                lens = getattr(o, "lengths", None)
                tokens += int(lens.sum()) if lens is not None else int(mb["lengths"].sum())
            stats = _all_sum(torch.tensor([float(loss_sum), float(tokens)], dtype=torch.float64), world)
            loss = float(stats[0]) / denom
            if recipe.max_grad_norm and recipe.max_grad_norm > 0:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, recipe.max_grad_norm))
            else:
                grad_norm = float("nan")
            lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            offset += 1
            if offset >= len(batches):
                epoch, offset = epoch + 1, 0
            losses.append(loss)
            dt = time.perf_counter() - t0
            tps = float(stats[1]) / max(dt, 1e-9)
            if rank == 0:
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tps:.0f}")
                if step % max(1, recipe.log_every) == 0:
                    with open(log_file, "a") as f:
                        f.write(json.dumps(dict(step=step, epoch=epoch, loss=loss, lr=lr, grad_norm=grad_norm,
                                                tokens_per_s=tps)) + "\n")
                if writer is not None:
                    writer.add_scalar("train/loss", loss, step)
                    writer.add_scalar("train/lr", lr, step)
                    writer.add_scalar("train/tokens_per_s", tps, step)
            if recipe.save_every and step % recipe.save_every == 0 and step < stop_at:
                save(out / f"checkpoint-{step:06d}")
        del it, loader
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    save(out if step >= total_steps else out / f"checkpoint-{step:06d}")
    result.step = step
    model.eval()
    return result


def _save_checkpoint(where: Path, spec: ModelSpec, model, wrapped, tokenizer, optimizer, scheduler, recipe: Recipe,
                     options: dict, strategy: str, pos: dict, rank: int, world: int) -> None:
    if strategy == "fsdp":
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_optimizer_state_dict,
        )

        full = _full_state_dict(wrapped)
        opt_sd = get_optimizer_state_dict(wrapped, optimizer,
                                          options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if rank == 0:
            clone = spec.rebuild(model)
            clone.load_state_dict(full)
            spec.save(clone, tokenizer, where, options)
    else:
        opt_sd = optimizer.state_dict()
        if rank == 0:
            spec.save(model, tokenizer, where, options)
    rngs = [rng_state()]
    if world > 1:
        gathered: list = [None] * world
        dist.all_gather_object(gathered, rngs[0])
        rngs = gathered
    if rank == 0:
        where.mkdir(parents=True, exist_ok=True)
        torch.save(dict(pos, optimizer=opt_sd, scheduler=scheduler.state_dict(), rng=rngs,
                        recipe=recipe.to_dict(), model=spec.name, strategy=strategy), where / STATE_FILE)
    if world > 1:
        dist.barrier()


# ---- local multi-process launch (CPU tests, single-node runs without torchrun) ---------------------
def _spawn_entry(rank: int, world: int, port: int, kwargs: dict, result_file: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        res = finetune(**kwargs)
        if rank == 0:
            Path(result_file).write_text(json.dumps({"losses": res.losses, "step": res.step}))
    finally:
        dist.destroy_process_group()


def spawn_finetune(nprocs: int, **kwargs) -> dict:
    """Run `finetune(**kwargs)` in `nprocs` local processes over gloo (torch.multiprocessing.spawn);
    returns rank 0's {"losses", "step"}."""
    import socket
    import tempfile

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        rf = os.path.join(tmp, "result.json")
        mp.spawn(_spawn_entry, args=(nprocs, port, kwargs, rf), nprocs=nprocs, join=True)
        return json.loads(Path(rf).read_text())
