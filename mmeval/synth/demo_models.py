"""The demo models: small VL-Mamba and Cobra models trained on CPU, in minutes, on the generated
training set (`training.py`), with the finetune module's loop, and cached.

What is built (`DEMO_SIZES`): the finetune module's tiny presets (tiny SigLIP tower for VL-Mamba,
tiny DINOv2+SigLIP towers for Cobra, 3 blocks each) with a slightly larger Mamba LM, and a
word-level tokenizer trained with `tokenizers` on the generated text (both chat templates
included). Everything is trained from random weights -- vision towers, connector and LM together
(`trainable=vision+projector+lm`) -- with the instruction-tuning recipe and a constant learning
rate after warm-up.

Cache: `<cache>/<model>/` holds the checkpoint in the model's released layout (what `--model-args
checkpoint=` reads, tokenizer.json beside it) and `demo.json` with the key (synth seed, training
set size, sizes, steps, code version). A matching key means the checkpoint is reused; anything
else retrains.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

DEMO_VERSION = "1"  # bump when the data generators or the training change
DEFAULT_CACHE = Path(".cache/mmeval-demo")
KEY_FILE = "demo.json"
SPECIALS = ["<|endoftext|>", "<|padding|>", "<unk>", "<|user|>", "<|assistant|>"]
MODELS = ("vl-mamba", "cobra")


@dataclass
class DemoConfig:
    """Sizes and training length of a demo model (the cache key)."""

    model: str = "vl-mamba"
    seed: int = 0  # the synth seed: the training pictures use seed + an offset
    train_scale: float = 20.0  # training questions = the benchmarks' default counts x this
    d_model: int = 64
    n_layer: int = 2
    d_state: int = 8
    steps: int = 600
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_ratio: float = 0.05
    mmc: str = "mlp"  # VL-Mamba connector (mlp trains fastest on CPU; the paper's default is vss-l2)
    threads: int = 0  # torch threads (0: all cores)
    extra: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        d = asdict(self)
        d.pop("threads")
        d["version"] = DEMO_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- tokenizer
def train_tokenizer(texts: list[str], out_dir: str | Path | None = None):
    """A word-level tokenizer trained with `tokenizers` on `texts` (words, punctuation and newlines
    are tokens; the special tokens first: <|endoftext|> = 0). Saved to out_dir when given."""
    from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from mmeval.models.cobra import build_prompt as cobra_prompt
    from mmeval.models.vl_mamba import build_prompt as vlm_prompt

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\s*\n\s*"), "isolated"),
        pre_tokenizers.Split(Regex(r"[^\S\n]+"), "removed"),
        pre_tokenizers.Split(Regex(r"[^\w\s]"), "isolated"),
    ])
    templates = [vlm_prompt("x"), cobra_prompt("x", "zephyr"), cobra_prompt("x", "mamba"),
                 "Reference OCR token: A B C D E True False Yes No yes no"]
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIALS, min_frequency=1)
    tok.train_from_iterator(list(texts) + templates, trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|padding|>",
                                   unk_token="<unk>")
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


# ---------------------------------------------------------------- models
def build_model(cfg: DemoConfig, tokenizer):
    """A fresh demo model (random weights, seeded)."""
    import torch

    torch.manual_seed(cfg.seed)
    vocab = len(tokenizer)
    if cfg.model == "vl-mamba":
        from mmeval.models.vl_mamba import TINY_LM, VLMamba, VLMambaConfig

        lm = json.loads(json.dumps(TINY_LM))
        lm.update(d_model=cfg.d_model, n_layer=cfg.n_layer, vocab_size=vocab, ssm_cfg={"d_state": cfg.d_state})
        mcfg = VLMambaConfig(tiny=True, encoder="siglip", mmc=cfg.mmc, lm_config=lm)
        return VLMamba(mcfg)
    if cfg.model == "cobra":
        from mmeval.models.cobra import Cobra, CobraConfig

        lm = dict(d_model=cfg.d_model, n_layer=cfg.n_layer, vocab_size=vocab, d_state=cfg.d_state)
        return Cobra(CobraConfig.tiny_config(vocab_size=vocab, lm=lm))
    raise ValueError(f"demo models exist for {', '.join(MODELS)}, not {cfg.model!r}")


def model_args(model: str, checkpoint: str | Path) -> dict[str, str]:
    """The --model-args that load a cached demo checkpoint."""
    ckpt = str(checkpoint)
    if model == "cobra":
        return {"checkpoint": ckpt, "vision": str(Path(ckpt) / "vision")}
    return {"checkpoint": ckpt}


def cached(cfg: DemoConfig, cache: str | Path = DEFAULT_CACHE) -> Path | None:
    """The cached checkpoint of this config, or None."""
    d = Path(cache) / cfg.model
    try:
        meta = json.loads((d / KEY_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    ckpt = d / "checkpoint"
    return ckpt if meta.get("key") == cfg.key() and (ckpt / "tokenizer.json").is_file() else None


def train_demo_model(cfg: DemoConfig, cache: str | Path = DEFAULT_CACHE, log: Callable[[str], None] = print,
                     progress: bool = True, force: bool = False) -> Path:
    """Train (or reuse) the demo model of `cfg`; returns its checkpoint directory."""
    hit = None if force else cached(cfg, cache)
    if hit is not None:
        log(f"{cfg.model}: cached demo model {hit} (key {cfg.key()})")
        return hit
    import torch

    from mmeval.finetune import finetune, get_recipe
    from mmeval.synth.training import build_training_set, corpus

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    d = Path(cache) / cfg.model
    data_dir = Path(cache) / f"train-seed{cfg.seed}-x{cfg.train_scale:g}"
    train_file = data_dir / "train.json"
    if not train_file.is_file():
        log(f"writing the training set (seed {cfg.seed}) to {data_dir}")
        build_training_set(data_dir, seed=cfg.seed, scale=cfg.train_scale)
    rows = json.loads(train_file.read_text())
    tok_dir = d / "tokenizer"
    tokenizer = train_tokenizer(corpus(rows), tok_dir)
    model = build_model(cfg, tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{cfg.model}: training a demo model ({n_params / 1e6:.2f}M parameters, vocabulary {len(tokenizer)}) "
        f"for {cfg.steps} steps of {cfg.batch_size} on {len(rows)} generated conversations")
    recipe = get_recipe(cfg.model, "instruct", {
        "trainable": "vision+projector+lm", "learning_rate": cfg.learning_rate, "lr_scheduler": "cosine",
        "warmup_ratio": cfg.warmup_ratio, "global_batch_size": cfg.batch_size, "per_device_batch_size": cfg.batch_size,
        "weight_decay": 0.0, "num_workers": 0, "max_length": 256, "seed": cfg.seed, "group_by_modality_length": False,
        "epochs": 1})
    out = d / "checkpoint"
    started = time.perf_counter()
    res = finetune(cfg.model, recipe, str(train_file), str(data_dir / "images"), str(out), device="cpu",
                   max_steps=cfg.steps, progress=progress, model=model, tokenizer=tokenizer)
    wall = time.perf_counter() - started
    losses = res.losses
    first, last = sum(losses[:10]) / max(1, len(losses[:10])), sum(losses[-10:]) / max(1, len(losses[-10:]))
    (d / KEY_FILE).write_text(json.dumps({"key": cfg.key(), "config": asdict(cfg), "train_wall_s": round(wall, 1),
                                          "loss_first10": round(first, 4), "loss_last10": round(last, 4),
                                          "n_conversations": len(rows), "threads": torch.get_num_threads(),
                                          "pid": os.getpid()}, indent=1))
    log(f"{cfg.model}: trained in {wall:.0f} s, loss {first:.3f} -> {last:.3f}; saved {out}")
    return out


# the settings `make demo` and the embedded default use (measured on 2 CPU cores: see docs/quickstart.md)
DEMO_SETTINGS: dict[str, dict[str, Any]] = {
    "vl-mamba": dict(steps=600),
    "cobra": dict(steps=800),
}


def demo_config(model: str, seed: int = 0) -> DemoConfig:
    if model not in DEMO_SETTINGS:
        raise ValueError(f"demo models exist for {', '.join(MODELS)}, not {model!r}")
    return DemoConfig(model=model, seed=seed, **DEMO_SETTINGS[model])
