"""The demo models: small VL-Mamba and Cobra models trained on the generated data with the finetune
module's loop (`mmeval.finetune.finetune`). They ship inside the package (`mmeval.synth.shipped`):
`make demo-train` (`mmeval.synth.demo_train`) retrains them with what this module declares.

`DemoConfig` holds what is built and how long it trains: the finetune module's tiny towers (random
and frozen, 42 px in 14-px patches) with VL-Mamba's MLP connector / Cobra's fused GELU-MLP
projector, a 2-layer 64-wide Mamba LM and a word-level tokenizer trained on the generated text.
Training follows the papers' two stages from random weights: alignment on captioned pictures
(`captions.json`), then instruction tuning on the generated questions (`train.json`) mixed with
"Describe the image." conversations. `DEMO_BUDGET` is how long and where both train (the one
setting a longer retrain changes); each family's own settings are the `demo` its adapter declares.
`train_demo_models` trains the two side by side, one process each. How these settings were found,
with the measurements: docs/quickstart.md ("How the settings were found").

Cache of a training: `<cache>/<model>/checkpoint/` holds the checkpoint in the model's released layout
(what `--model-args checkpoint=` reads, tokenizer.json beside it; Cobra's towers in `vision/`) and
`<cache>/<model>/demo.json` the key (seed, sizes, steps, code version). A matching key means the
checkpoint is reused; anything else retrains.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEMO_VERSION = "5"  # bump when the data generators or the training change


@dataclass(frozen=True)
class DemoBudget:
    """How long the demo models train, and on what: the same for both families."""

    align_steps: int  # stage 1 (captions right after the picture)
    steps: int  # stage 2 (instruction tuning), after the alignment
    batch_size: int
    device: str = "cpu"


# The budget of the shipped demo models (measured on 2 CPU cores: docs/quickstart.md). A longer
# retrain (e.g. on a GPU) changes this one line, then `make demo-train REPLACE=1` writes the new weights.
DEMO_BUDGET = DemoBudget(align_steps=600, steps=1300, batch_size=64, device="cpu")
DEFAULT_CACHE = Path(".cache/mmeval-demo")
KEY_FILE = "demo.json"
SPECIALS = ["<|endoftext|>", "<|padding|>", "<unk>", "<|user|>", "<|assistant|>"]
TRAINING_STATE = ("trainer_state.pt", "train_log.jsonl")  # in a finetune checkpoint; not needed to load it


@dataclass
class DemoConfig:
    """Sizes and training length of a demo model (the cache key)."""

    model: str = "vl-mamba"
    seed: int = 0  # the synth seed: the training pictures use seed + an offset
    train_scale: float = 20.0  # training questions = the benchmarks' default counts x this
    d_model: int = 64
    n_layer: int = 2
    d_state: int = 8
    dt_min: float = 0.01  # Mamba step-size init range (mamba_ssm: 0.001-0.1): 0.01-0.1 lets the tiny LM carry
    dt_max: float = 0.1  # the picture over the ~15 prompt tokens between it and the answer
    steps: int = 900
    align_steps: int = 600  # stage 1 (captions right after the picture), before the `steps` of stage 2
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_ratio: float = 0.05
    trainable: str = "projector+lm"  # the random vision towers stay frozen (as the papers freeze theirs)
    projector: str = ""  # Cobra projector (arch specifier); "" = the tiny preset's fused-gelu-mlp
    image_scale: float = 1.0  # calibrate_projector target (0: off)
    mmc: str = "mlp"  # VL-Mamba connector (mlp trains fastest on CPU; the paper's default is vss-l2)
    image_size: int = 42  # tower input (px): 42 = 3 x 3 patches of 14 px, one patch column per picture slot
    patch_size: int = 14  # VL-Mamba's SigLIP patch (Cobra's timm towers are patch-14 by construction)
    caption_mix: int = 6000  # "Describe the image." conversations from the caption set added to stage 2
    device: str = "cpu"  # where it trains (fp32)
    threads: int = 0  # torch threads (0: all cores)
    extra: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        d = asdict(self)
        d.pop("threads")
        d["version"] = DEMO_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class DemoSpec:
    """A family's demo model, declared with its adapter (`demo = ...` on the adapter class).

    `settings`: the family's own DemoConfig fields (`DEMO_BUDGET` sets the steps, batch and
    device of both). A family subclass builds the model (`build`), says which --model-args load its
    checkpoint (`model_args`), names the template texts the demo tokenizer must know
    (`prompt_texts`) and the phrases it keeps as one token each (`phrases`), and, where the family
    has public weights, fetches them for the embedded default (`released`)."""

    settings: dict[str, Any] = field(default_factory=dict)

    def build(self, cfg: DemoConfig, vocab_size: int):
        """A fresh model of `cfg`'s sizes (random weights; the caller seeds)."""
        raise NotImplementedError

    def model_args(self, checkpoint: str | Path) -> dict[str, str]:
        return {"checkpoint": str(checkpoint)}

    def prompt_texts(self) -> list[str]:
        return []

    def phrases(self) -> list[str]:
        return []

    def ship(self, checkpoint: Path, out: Path, skip: tuple[str, ...] = ()) -> None:
        """Copy what `model_args` needs to load the trained `checkpoint` into `out` (`mmeval.synth.shipped`):
        every file but the training state and those in `skip` (relative paths)."""
        import shutil

        for f in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
            rel = f.relative_to(checkpoint)
            if rel.name not in TRAINING_STATE and rel.as_posix() not in skip:
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, out / rel)

    def released(self) -> tuple[dict[str, str] | None, str]:
        """(--model-args of the family's released checkpoint, fetched through the Hugging Face client,
        or None; why not, in a few words). What the embedded default uses instead of the demo model."""
        return None, "no public weights"


def demo_families() -> dict[str, DemoSpec]:
    """The registered model families that declare a demo model, by name."""
    from mmeval.registry import model_classes

    return {name: cls.demo for name, cls in model_classes().items() if getattr(cls, "demo", None) is not None}


def demo_spec(model: str) -> DemoSpec:
    families = demo_families()
    if model not in families:
        raise ValueError(f"demo models exist for {', '.join(families)}, not {model!r}")
    return families[model]


# ---------------------------------------------------------------- tokenizer
def train_tokenizer(texts: list[str], out_dir: str | Path | None = None):
    """A word-level tokenizer trained with `tokenizers` on `texts` (words, punctuation and newlines
    are tokens; the special tokens first: <|endoftext|> = 0). Saved to out_dir when given."""
    from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    families = list(demo_families().values())  # their template words (the vocabulary is the same in any order)
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\s*\n\s*"), "isolated"),
        pre_tokenizers.Split(Regex(r"[^\S\n]+"), "removed"),
        pre_tokenizers.Split(Regex(r"[^\w\s]"), "isolated"),
    ])
    templates = [t for f in families for t in f.prompt_texts()] + [
        "Reference OCR token: A B C D E True False Yes No yes no"]
    trainer = trainers.WordLevelTrainer(special_tokens=SPECIALS, min_frequency=1)
    tok.train_from_iterator(list(texts) + templates, trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    phrases = [p for f in families for p in f.phrases()] + frequent_phrases(texts)
    tok.add_tokens([AddedToken(p, special=False, normalized=False) for p in phrases])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|padding|>",
                                   unk_token="<unk>")
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


def frequent_phrases(texts: list[str], min_share: float = 0.03, min_words: int = 4) -> list[str]:
    """Sentences found verbatim in at least `min_share` of the texts, of `min_words` words or more,
    that name no shape, colour or word the answers depend on: the fixed instructions of the
    prompts ("Answer the question using a single word or phrase.", ...). The tokenizer keeps each
    as one token, which shortens every sequence by a dozen tokens (faster training, and a shorter
    way from the picture and question to the answer)."""
    import re
    from collections import Counter

    from mmeval.synth.images import COLORS, SHAPES, WORDS

    banned = set(SHAPES) | set(COLORS) | set(WORDS)
    counts: Counter[str] = Counter()
    for text in texts:
        seen = set()
        for line in text.replace("<image>", "").split("\n"):
            for sent in re.split(r"(?<=[.?!])\s+(?=[A-Z])", line.strip()):
                sent = sent.strip()
                if len(sent.split()) >= min_words and not banned & set(re.findall(r"\w+", sent.lower())):
                    seen.add(sent)
        counts.update(seen)
    return sorted((p for p, c in counts.items() if c >= min_share * max(1, len(texts))), key=lambda p: (-len(p), p))


# ---------------------------------------------------------------- models
def build_model(cfg: DemoConfig, tokenizer):
    """A fresh demo model (random weights, seeded)."""
    import torch

    spec = demo_spec(cfg.model)
    torch.manual_seed(cfg.seed)
    model = spec.build(cfg, len(tokenizer))
    if cfg.image_scale:
        calibrate_projector(model, cfg.model, cfg.image_scale, cfg.seed)
    return model


def calibrate_projector(model, family: str, target: float = 1.0, seed: int = 0) -> float:
    """Scale the projector's last linear layer so that the image tokens have `target` times the
    spread of the LM's word embeddings at initialisation. Image tokens much larger than the word
    embeddings reach the LM's first RMSNorm with a much larger norm, and the norm divides their
    gradient by it: the from-scratch LM then never learns to read the picture. Returns the factor."""
    import random

    import torch

    from mmeval.finetune.specs import get_spec
    from mmeval.synth.images import draw_scene, random_scene

    rng = random.Random(f"{seed}/calibrate")
    spec = get_spec(family)
    xs = [spec.image_transform(model)(draw_scene(random_scene(rng))) for _ in range(64)]
    pv = {k: torch.stack([x[k] for x in xs]) for k in xs[0]} if isinstance(xs[0], dict) else torch.stack(xs)
    projector = spec.groups(model)["projector"]
    last = [m for m in projector.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        emb = float(model.lm.backbone.embedding.weight.float().std())
        spread = float(model.encode_images(pv).float().std())
        factor = target * emb / max(spread, 1e-9)
        last.weight.mul_(factor)
        if last.bias is not None:
            last.bias.mul_(factor)
    return factor


def model_args(model: str, checkpoint: str | Path) -> dict[str, str]:
    """The --model-args that load a cached demo checkpoint."""
    return demo_spec(model).model_args(checkpoint)


def cached(cfg: DemoConfig, cache: str | Path = DEFAULT_CACHE) -> Path | None:
    """The cached checkpoint of this config, or None."""
    d = Path(cache) / cfg.model
    try:
        meta = json.loads((d / KEY_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    ckpt = d / "checkpoint"
    return ckpt if meta.get("key") == cfg.key() and (ckpt / "tokenizer.json").is_file() else None


def caption_rows(data_dir: Path, cfg: DemoConfig, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """The caption set of `data_dir` (written, or rewritten larger, when it has fewer captions than
    one pass of the alignment stage or the stage-2 mix needs)."""
    from mmeval.synth.training import CAPTION_FILE, build_caption_set

    need = max(64, cfg.align_steps * cfg.batch_size, cfg.caption_mix)
    cap_file = data_dir / CAPTION_FILE
    try:
        rows = json.loads(cap_file.read_text())
    except (OSError, json.JSONDecodeError):
        rows = []
    if len(rows) < need:
        log(f"writing the caption set ({need} pictures) to {data_dir}")
        build_caption_set(data_dir, seed=cfg.seed, n=need)
        rows = json.loads(cap_file.read_text())
    return rows


def instruct_rows(
    questions: list[dict[str, Any]], captions: list[dict[str, Any]], cfg: DemoConfig
) -> list[dict[str, Any]]:
    """Stage 2's data: the generated questions and the first `cfg.caption_mix` captions as "Describe
    the image." conversations (under the chat template, as LLaVA's mix665k keeps description data),
    shuffled with the seed. The descriptions teach reading the picture *through* the chat prompt
    (every word of the answer depends on it), which the one-word answers alone do not in the budget."""
    import random

    if not cfg.caption_mix:
        return list(questions)
    rows = list(questions) + list(captions[: cfg.caption_mix])
    random.Random(f"{cfg.seed}/instruct").shuffle(rows)
    return rows


def training_data(cfg: DemoConfig, cache: str | Path = DEFAULT_CACHE,
                  log: Callable[[str], None] = print) -> tuple[Path, list[dict[str, Any]], list[dict[str, Any]]]:
    """(folder, questions, captions) of `cfg`'s training data, written when missing."""
    from mmeval.synth.training import build_training_set

    data_dir = Path(cache) / f"train-v{DEMO_VERSION}-seed{cfg.seed}-x{cfg.train_scale:g}"
    train_file = data_dir / "train.json"
    if not train_file.is_file():
        log(f"writing the training set (seed {cfg.seed}) to {data_dir}")
        build_training_set(data_dir, seed=cfg.seed, scale=cfg.train_scale)
    rows = json.loads(train_file.read_text())
    captions = caption_rows(data_dir, cfg, log) if (cfg.align_steps or cfg.caption_mix) else []
    return data_dir, rows, captions


def train_demo_models(cfgs: list[DemoConfig], cache: str | Path = DEFAULT_CACHE,
                      log: Callable[[str], None] = print, cores: int | None = None,
                      threads: int | None = None) -> dict[str, Path]:
    """Train (or reuse) several demo models; returns {model: checkpoint}. With two cores or more,
    the missing ones train side by side, one child process each with an equal share of the cores, or
    `threads` each (much of a tiny model's step -- data loading, the scan's per-token loop -- is
    single-threaded Python, so two processes keep both cores busy). Their training data is written
    first, here, once."""
    import subprocess
    import sys

    cores = cores or len(os.sched_getaffinity(0))
    todo = [c for c in cfgs if cached(c, cache) is None]
    if len(todo) < 2 or cores < 2:
        return {c.model: train_demo_model(c, cache, log=log) for c in cfgs}
    # the largest caption set first, so that no child rewrites it while another reads it
    for c in sorted(todo, key=lambda c: -max(c.align_steps * c.batch_size, c.caption_mix)):
        training_data(c, cache, log)
    threads = threads or max(1, cores // len(todo))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    procs = {}
    for c in todo:
        spec = json.dumps(asdict(c) | {"threads": threads})
        log(f"{c.model}: training in a child process ({threads} thread{'s' * (threads > 1)})")
        procs[c.model] = subprocess.Popen([sys.executable, "-m", "mmeval.synth.demo_models", "--config", spec,
                                           "--cache", str(cache)], env=env)
    codes = {m: p.wait() for m, p in procs.items()}
    out = {}
    for c in cfgs:
        out[c.model] = cached(c, cache)
        if out[c.model] is None:
            raise RuntimeError(f"demo model {c.model}: training failed (child exit code {codes.get(c.model)}; "
                               "its output is above)")
    return out


def train_demo_model(cfg: DemoConfig, cache: str | Path = DEFAULT_CACHE, log: Callable[[str], None] = print,
                     progress: bool = True, force: bool = False) -> Path:
    """Train (or reuse) the demo model of `cfg` on `cfg.device` (fp32); returns its checkpoint directory."""
    hit = None if force else cached(cfg, cache)
    if hit is not None:
        log(f"{cfg.model}: cached demo model {hit} (key {cfg.key()})")
        return hit
    import torch

    from mmeval.finetune import finetune, get_recipe
    from mmeval.synth.training import corpus

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    d = Path(cache) / cfg.model
    data_dir, rows, captions = training_data(cfg, cache, log)
    mixed = instruct_rows(rows, captions, cfg)
    tok_dir = d / "tokenizer"
    tokenizer = train_tokenizer(corpus(rows) + corpus(captions), tok_dir)
    model = build_model(cfg, tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{cfg.model}: training a demo model ({n_params / 1e6:.2f}M parameters, vocabulary {len(tokenizer)}): "
        f"{cfg.align_steps} alignment steps on {len(captions)} captioned pictures, then {cfg.steps} "
        f"instruction steps on {len(rows)} generated questions + {len(mixed) - len(rows)} descriptions "
        f"(batch {cfg.batch_size})")
    common = {"trainable": cfg.trainable, "learning_rate": cfg.learning_rate, "lr_scheduler": "cosine",
              "warmup_ratio": cfg.warmup_ratio, "global_batch_size": cfg.batch_size,
              "per_device_batch_size": cfg.batch_size, "weight_decay": 0.0, "num_workers": 0, "max_length": 256,
              "seed": cfg.seed, "group_by_modality_length": False, "epochs": 1, "mixed_precision": "fp32"}
    out = d / "checkpoint"
    started = time.perf_counter()
    if cfg.align_steps:
        res = finetune(cfg.model, get_recipe(cfg.model, "align", common), captions, str(data_dir / "images"),
                       str(d / "align"), device=cfg.device, max_steps=cfg.align_steps, progress=progress, model=model,
                       tokenizer=tokenizer)
        model = res.model
    res = finetune(cfg.model, get_recipe(cfg.model, "instruct", common), mixed, str(data_dir / "images"),
                   str(out), device=cfg.device, max_steps=cfg.steps, progress=progress, model=model,
                   tokenizer=tokenizer)
    wall = time.perf_counter() - started
    losses = res.losses
    first, last = sum(losses[:10]) / max(1, len(losses[:10])), sum(losses[-10:]) / max(1, len(losses[-10:]))
    (d / KEY_FILE).write_text(json.dumps({"key": cfg.key(), "config": asdict(cfg), "train_wall_s": round(wall, 1),
                                          "loss_first10": round(first, 4), "loss_last10": round(last, 4),
                                          "n_conversations": len(mixed), "threads": torch.get_num_threads(),
                                          "pid": os.getpid()}, indent=1))
    log(f"{cfg.model}: trained in {wall:.0f} s, loss {first:.3f} -> {last:.3f}; saved {out}")
    return out


def demo_config(model: str, seed: int = 0, budget: DemoBudget | None = None) -> DemoConfig:
    """The config the shipped demo model of `model` is trained with: `budget` (default DEMO_BUDGET)
    and the family's `DemoSpec.settings` (which win where both set a field)."""
    return DemoConfig(model=model, seed=seed, **{**asdict(budget or DEMO_BUDGET), **demo_spec(model).settings})


def main(argv: list[str] | None = None) -> None:
    """`python -m mmeval.synth.demo_models --config JSON --cache DIR`: train one demo model (the
    child process of `train_demo_models`)."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--config", required=True, help="DemoConfig fields as JSON")
    ap.add_argument("--cache", default=str(DEFAULT_CACHE))
    args = ap.parse_args(argv)
    train_demo_model(DemoConfig(**json.loads(args.config)), args.cache, log=lambda m: print(m, flush=True),
                     progress=False)


if __name__ == "__main__":
    main()
