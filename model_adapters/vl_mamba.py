"""`vl-mamba`: VL-Mamba (vision tower -> VSS/MLP MultiModal Connector -> Mamba LM), arXiv 2403.13600.

Every ablation axis of the paper is a --model-arg (encoder, mmc, scan, llm); the paper default is
SigLIP-SO + VSS-L2 + BSM + Mamba-2.8B-SlimPajama. No VL-Mamba weights are public: `checkpoint=`
takes the LLaVA-style layout defined in `mmeval/models/vl_mamba.py` (or a bare state-spaces Mamba
folder plus `projector=mm_projector.bin`), `tiny=1` builds a seeded test-size model with an
in-memory tokenizer, and `random_init=1` the full-size model with random weights and no files
(throughput runs), e.g.

    mmeval run --model vl-mamba --model-args random_init=1,dtype=bfloat16 ...

Prompt template, image placement and the BOS/EOS choice: `PROMPT_TEMPLATE_DOC` in
`mmeval/models/vl_mamba.py`; inference and finetuning use the same template (`chat_template`), with
the image where the model's `image_position` says (`llava`, LLaVA-1.5's place after "USER: ", the
default; `first`, before the whole text prompt as the paper's Eq. 7 reads). A checkpoint records
its position and is evaluated with it unless `image_position=` says otherwise.
Inference runs through `VLMRuntime` (`MambaVLMAdapter`).

The family is declared here in full: the adapter, its finetune spec and recipes (`VLMambaFinetune`),
its lmms-eval name and its demo model (`VLMambaDemo`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from mmeval.adapter import CommonModelArgs, LmmsEvalName
from mmeval.errors import ModelArgsError
from mmeval.finetune.specs import ModelSpec, load_tokenizer_dir, to_device, write_meta
from mmeval.models.vl_mamba import llm_choices_help
from mmeval.models.vlm_adapter import Loaded, MambaVLMAdapter
from mmeval.synth.demo_models import DemoSpec

AXES = ("encoder", "mmc", "scan", "llm")  # the paper's ablation axes
IMAGE_PLACEMENT = {  # what each image_position means, for the identity
    "llava": "after 'USER: ' of the first turn (LLaVA-1.5's; the paper states no position)",
    "first": "before the whole text prompt, after the BOS (the paper's Eq. 7)",
}


# ---- training -------------------------------------------------------------------------------
# The VL-Mamba paper (arXiv 2403.13600) names the data -- LLaVA's 558K captions for pretraining and
# LLaVA-v1.5 mix665k for instruction tuning (the PT/IT columns of its main table) -- and states no
# learning rate, batch size, epochs, schedule, prompt or image position. Every number below is
# therefore LLaVA-1.5's, not the paper's: haotian-liu/LLaVA `scripts/v1_5/pretrain.sh` (align) and
# `scripts/v1_5/finetune.sh` (instruct) at main c121f04 (both unchanged since ecb5984, 2023-10-10),
# plus the Hugging Face Trainer defaults those scripts leave in place. Both scripts run on one 8-GPU
# node (LLaVA's README: "8 A100 GPUs"; global batch = per device x accumulation x GPUs):
#   pretrain.sh: 32 per device x 1 accumulation x 8 = 256, lr 1e-3, 1 epoch, wd 0., warmup_ratio 0.03,
#       cosine, model_max_length 2048, --version plain, --tune_mm_mlp_adapter True, --bf16 True,
#       --dataloader_num_workers 4 (other per-device/accumulation splits, e.g. 16 x 4 on 4 GPUs, exist only
#       on pull-request branches, never on main);
#   finetune.sh: 16 per device x 1 x 8 = 128, lr 2e-5, 1 epoch, wd 0., warmup_ratio 0.03, cosine,
#       model_max_length 2048, --version v1, --group_by_modality_length True, projector + LLM trained.
# `_sources` says field by field where each value comes from; `mmeval finetune --print-recipe`
# prints it. Not carried by the recipe (model/runner settings): --image_aspect_ratio pad and
# --mm_vision_select_layer -2 (VLMambaConfig), deepspeed ZeRO-2/3, tf32, gradient checkpointing.
_LLAVA_COMMIT = "haotian-liu/LLaVA main c121f04, unchanged since ecb5984"
_PRETRAIN, _FINETUNE = "LLaVA-1.5 scripts/v1_5/pretrain.sh", "LLaVA-1.5 scripts/v1_5/finetune.sh"
_HF = "Hugging Face Trainer default"


def _source(script: str, data: str) -> str:
    return (f"{script} ({_LLAVA_COMMIT}) and {_HF}s; not the VL-Mamba paper (arXiv 2403.13600), which gives "
            f"only the data ({data})")


def _sources(script: str, stage: str) -> dict[str, str]:
    """Where each field of the VL-Mamba `stage` preset comes from (`script`: pretrain.sh or finetune.sh)."""
    align = stage == "align"
    per_device = 32 if align else 16
    return {
        "dataset": f"VL-Mamba paper main table ({'PT 558K' if align else 'IT 665K'}) = {script} --data_path",
        "trainable": f"{script}: " + ("--tune_mm_mlp_adapter True (projector only)" if align else
                                      "projector + LLM (freeze_backbone False; clip_encoder.py freezes the tower)"),
        "template": f"{script} --version " + ("plain" if align else "v1 (here: VL-Mamba's chat template, "
                                                                  "mmeval/models/vl_mamba.py)"),
        "epochs": f"{script} --num_train_epochs 1",
        "global_batch_size": f"{script}: {per_device} per device x 1 accumulation x 8 GPUs (LLaVA README: "
                             f"global batch {per_device * 8})",
        "per_device_batch_size": f"{script} --per_device_train_batch_size {per_device}",
        "learning_rate": f"{script} --learning_rate {'1e-3' if align else '2e-5'}",
        "weight_decay": f"{script} --weight_decay 0.",
        "decay_1d": "ours, inert at weight_decay 0 (the HF Trainer would exempt biases and LayerNorm weights)",
        "adam_beta1": f"{_HF} (adam_beta1 0.9)",
        "adam_beta2": f"{_HF} (adam_beta2 0.999)",
        "adam_eps": f"{_HF} (adam_epsilon 1e-8)",
        "max_grad_norm": f"{_HF} (max_grad_norm 1.0)",
        "lr_scheduler": f"{script} --lr_scheduler_type cosine (HF: linear warmup, then cosine to 0)",
        "warmup_ratio": f"{script} --warmup_ratio 0.03",
        "warmup_rounding": f"{_HF} (warmup steps = ceil(warmup_ratio x total steps))",
        "max_length": f"{script} --model_max_length 2048",
        "group_by_modality_length": (f"{script} leaves it unset (LLaVA TrainingArguments default False)" if align
                                     else f"{script} --group_by_modality_length True"),
        "seed": f"{_HF} (seed 42)",
        "num_workers": f"{script} --dataloader_num_workers 4",
        "mixed_precision": f"{script} --bf16 True",
    }


RECIPES: dict[str, dict[str, Any]] = {
    "align": dict(
        dataset="LLaVA-Pretrain blip_laion_cc_sbu_558k.json (558K)", trainable=("projector",), template="plain",
        epochs=1, global_batch_size=256, per_device_batch_size=32, learning_rate=1e-3, weight_decay=0.0,
        decay_1d=True, max_grad_norm=1.0, warmup_ratio=0.03, warmup_rounding="ceil", max_length=2048,
        group_by_modality_length=False, seed=42, num_workers=4, mixed_precision="bf16",
        source=_source(_PRETRAIN, "PT 558K"), sources=_sources(_PRETRAIN, "align")),
    "instruct": dict(
        dataset="llava_v1_5_mix665k.json (665K)", trainable=("projector", "lm"), template="chat",
        epochs=1, global_batch_size=128, per_device_batch_size=16, learning_rate=2e-5, weight_decay=0.0,
        decay_1d=True, max_grad_norm=1.0, warmup_ratio=0.03, warmup_rounding="ceil", max_length=2048,
        group_by_modality_length=True, seed=42, num_workers=4, mixed_precision="bf16",
        source=_source(_FINETUNE, "IT 665K"), sources=_sources(_FINETUNE, "instruct")),
}


def chat_template(model, tokenizer):
    """VL-Mamba's chat template (`mmeval.models.vl_mamba.chat_template`) with the image at the model's
    `image_position` (model None: the default, `llava`): inference and training."""
    from mmeval.models.vl_mamba import chat_template as vl_mamba_template

    return vl_mamba_template(tokenizer, "llava" if model is None else model.cfg.image_position)


def _set_image_position(model, value: str | None) -> None:
    """`image_position=` given: it replaces the checkpoint's (an evaluation or finetuning choice, recorded)."""
    from mmeval.models.vl_mamba import check_image_position

    if value:
        model.cfg.image_position = check_image_position(value)


class VLMambaFinetune(ModelSpec):
    """`mmeval finetune --model vl-mamba`: LLaVA-style checkpoints in and out (`VLMamba.save_pretrained`)."""

    def __init__(self):
        super().__init__(name="vl-mamba", image_first=False, recipes=RECIPES, chat_template=chat_template,
                         options=("vision_tower", "projector", "tokenizer", "image_position") + AXES)

    def build(self, tiny, init, options, device, seed, stage):
        from mmeval.models.vl_mamba import VLMamba, VLMambaConfig, build_tiny_tokenizer

        axes = {k: options[k] for k in AXES + ("image_position",) if k in options}
        if init:
            cfg = VLMambaConfig(tiny=tiny, **axes) if (tiny or axes) else None
            torch.manual_seed(seed)
            model = VLMamba.from_pretrained(init, device=device, dtype=torch.float32,
                                            vision_tower=options.get("vision_tower"),
                                            projector=options.get("projector"), config=cfg,
                                            allow_random_projector=(stage == "align"), allow_random_vision_tower=tiny)
            _set_image_position(model, options.get("image_position"))  # over an init checkpoint's
            d = Path(init)
            if options.get("tokenizer") or (d / "tokenizer.json").is_file():
                return model, load_tokenizer_dir(options.get("tokenizer") or d)
            if not model.cfg.tiny:
                raise ValueError(f"vl-mamba: no tokenizer.json in {d}; pass --set tokenizer=PATH")
            return model, build_tiny_tokenizer()
        if not tiny:
            raise ValueError("vl-mamba: without --init give --tiny (or --init a Mamba LM dir / VL-Mamba checkpoint)")
        tok = build_tiny_tokenizer()
        cfg = VLMambaConfig(tiny=True, **axes)
        torch.manual_seed(seed)
        return VLMamba(cfg, device=device), tok

    def load(self, directory, device, options=None):
        return self.build(_tiny_checkpoint(directory), str(directory), dict(options or {}), device, 0, "instruct")

    def save(self, model, tokenizer, directory, options=None):
        d = model.save_pretrained(directory)
        tokenizer.save_pretrained(str(d))
        write_meta(d, {"model": self.name})
        return d

    def rebuild(self, model):
        from mmeval.models.vl_mamba import VLMamba

        return VLMamba(model.cfg)

    def groups(self, model):
        return {"vision": model.vision_tower, "projector": model.mm_projector, "lm": model.lm}

    def set_trainable(self, model, trainable):
        super().set_trainable(model, trainable)
        model.freeze_vision_tower = "vision" not in trainable

    def forward(self, m, batch, device):
        from mmeval.models.vl_mamba import IMAGE_TOKEN_INDEX

        return m(input_ids=batch["input_ids"].to(device), lengths=batch["lengths"].to(device),
                 pixel_values=to_device(batch["pixel_values"], device), image_token_id=IMAGE_TOKEN_INDEX,
                 labels=batch["labels"].to(device))

    def loss_vocab(self, model):
        return int(model.lm.config.vocab_size)  # VLMamba.forward's loss runs over the unpadded vocabulary


def _tiny_checkpoint(d) -> bool:
    f = Path(d) / "config.json"
    try:
        return bool(json.loads(f.read_text()).get("vl_mamba", {}).get("tiny"))
    except Exception:
        return False


# ---- the demo model ---------------------------------------------------------------------------
class VLMambaDemo(DemoSpec):
    """`make demo`'s VL-Mamba: the tiny SigLIP tower at the demo's size, the `mmc` connector, a small LM."""

    def build(self, cfg, vocab_size):
        from mmeval.models.vision_hf import vision_config_dict
        from mmeval.models.vl_mamba import TINY_LM, VLMamba, VLMambaConfig

        lm = json.loads(json.dumps(TINY_LM))
        lm.update(d_model=cfg.d_model, n_layer=cfg.n_layer, vocab_size=vocab_size,
                  ssm_cfg={"d_state": cfg.d_state, "dt_min": cfg.dt_min, "dt_max": cfg.dt_max})
        vision = dict(vision_config_dict("siglip", tiny=True), image_size=cfg.image_size, patch_size=cfg.patch_size)
        return VLMamba(VLMambaConfig(tiny=True, encoder="siglip", mmc=cfg.mmc, lm_config=lm, vision_config=vision))

    def prompt_texts(self):
        from mmeval.models.vl_mamba import build_prompt

        return [build_prompt("x")]

    def phrases(self):
        from mmeval.models.vl_mamba import SYSTEM_PROMPT

        return [SYSTEM_PROMPT]


# ---- the adapter ------------------------------------------------------------------------------
class VLMambaAdapter(MambaVLMAdapter):
    name = "vl-mamba"
    description = ("VL-Mamba (CLIP/SigLIP ViT, MLP/VSS-MLP/VSS-L2 connector with BSM/CSM scan, Mamba LM); "
                   "arXiv 2403.13600")
    preferred_protocol = "llava"
    options = {
        "encoder": "vision tower: clip (CLIP-ViT-L/14-336) | siglip (SigLIP-SO400M/14-384, default)",
        "mmc": "MultiModal Connector: mlp | vss-mlp | vss-l2 (default)",
        "scan": "2D scan of the VSS connectors: bsm (bidirectional, default) | csm (cross-scan, 4 routes)",
        "llm": llm_choices_help(),
        "image_position": "where the image tokens go: llava (after 'USER: ' of the first turn, LLaVA-1.5's; default) "
                          "| first (before the whole text prompt, the paper's Eq. 7); default with checkpoint=: "
                          "the checkpoint's",
        "checkpoint": "VL-Mamba checkpoint dir (config.json with mm_* fields + model.safetensors), or a bare "
                      "state-spaces Mamba dir/hub id with projector=",
        "projector": "connector file for a bare Mamba checkpoint (LLaVA stage-1 mm_projector.bin)",
        "vision_tower": "folder (config.json + safetensors) or hub id of the pretrained CLIP/SigLIP tower, when the "
                        "checkpoint does not include it (default: config.json's mm_vision_tower)",
        "tokenizer": "tokenizer.json or a dir holding it (default: the checkpoint dir, then the LLM's hub id)",
        "dtype": "float32 | bfloat16 | float16 (default bfloat16 on CUDA, float32 on CPU)",
        "device": "torch device (default: the runner's)",
        "tiny": "1: tiny random model + in-memory tiny tokenizer (tests; seeded, no files)",
        "random_init": "1: full-size model with random weights and no files (speed runs); the tokenizer is "
                       "tokenizer= if given, else an in-memory byte-level one",
        "seed": "seed for tiny/random_init weights (default 0)",
        "prefix_cache": "true|false: reuse the post-image state across questions on one image (default true)",
        "cuda_graphs": "true|false: CUDA-graph single-token decoding (default true on CUDA)",
        "kernel": "auto | ref | cuda: Mamba/VSS scan kernels (default auto)",
    }

    finetune = VLMambaFinetune()
    lmms_eval = LmmsEvalName("vl_mamba", aliases=("vl-mamba",))
    # the demo model's own settings (steps, batch, device: demo_models.DEMO_BUDGET; docs/quickstart.md)
    demo = VLMambaDemo(settings=dict(learning_rate=5e-3))

    chat_template = staticmethod(chat_template)

    @classmethod
    def load(cls, args: dict[str, str], common: CommonModelArgs) -> Loaded:
        from mmeval.models.vl_mamba import VLMamba, VLMambaConfig, build_tiny_tokenizer

        dev, dtype, tiny, random_init, ckpt = common.device, common.dtype, common.tiny, common.random_init, \
            common.checkpoint
        if tiny and random_init:
            raise ModelArgsError("model vl-mamba: give tiny=1 or random_init=1, not both")
        if random_init and ckpt:
            raise ModelArgsError("model vl-mamba: random_init=1 builds a model without files; drop checkpoint=")
        if not (tiny or random_init or ckpt):
            raise ModelArgsError("model vl-mamba: give checkpoint=PATH, tiny=1 or random_init=1")
        axes = {k: args[k] for k in AXES if args.get(k)}
        position = args.get("image_position") or None
        try:
            cfg = VLMambaConfig(tiny=tiny, **axes, **({"image_position": position} if position else {}))
        except ValueError as e:
            raise ModelArgsError(f"model vl-mamba: {e}") from None

        tok_source = args.get("tokenizer")
        trained_position = None  # the checkpoint's image_position
        if ckpt:
            ckpt_path = _resolve_checkpoint(ckpt)
            model = VLMamba.from_pretrained(ckpt_path, device=dev, dtype=dtype, kernel=common.kernel,
                                            vision_tower=args.get("vision_tower"), projector=args.get("projector"),
                                            config=cfg)
            ckpt = str(ckpt_path)
            for k, v in axes.items():  # axes given with a checkpoint must agree with it
                have = getattr(model.cfg, k)
                if k != "llm" and have != getattr(cfg, k):
                    raise ModelArgsError(f"model vl-mamba: {k}={v} but checkpoint {ckpt} has {k}={have}")
            trained_position = model.cfg.image_position
            _set_image_position(model, position)  # a prompt choice, not the architecture: may differ
            if tiny and not tok_source:
                tok, tok_source = build_tiny_tokenizer(), "tiny (in-memory)"
            else:
                tok_source = tok_source or (ckpt if (ckpt_path / "tokenizer.json").is_file() else None) \
                    or model.cfg.llm_hub_id or "EleutherAI/gpt-neox-20b"
                tok = cls.load_tokenizer(tok_source)
        else:
            torch.manual_seed(common.seed)
            model = VLMamba(cfg, device=dev, dtype=dtype, kernel=common.kernel)
            if tiny:  # break the symmetric initial values (norms at 1, D at 1, ...) so outputs vary
                with torch.no_grad():
                    for prm in model.parameters():
                        prm.add_(torch.randn_like(prm) * 0.2)
            if tok_source:
                tok = cls.load_tokenizer(tok_source)
            else:  # no files at all: ids only need to lie inside the vocabulary
                tok = build_tiny_tokenizer()
                tok_source = "tiny (in-memory)" + ("" if tiny else "; random_init without tokenizer=")
        return Loaded(model, tok, tok_source, checkpoint=ckpt,
                      extra={"checkpoint_image_position": trained_position})

    def __init__(self, *args, checkpoint_image_position: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.checkpoint_image_position = checkpoint_image_position

    def identity_config(self) -> dict[str, Any]:
        from mmeval.models.vl_mamba import build_prompt

        m = self.model
        position = m.cfg.image_position
        out = dict(dtype=self.dtype_name, prompt_template=build_prompt("{prompt}", image_position=position),
                   bos="<|endoftext|> prepended", image_tokens=m.num_image_tokens, image_position=position,
                   image_placement=IMAGE_PLACEMENT[position])
        if self.checkpoint_image_position is not None:  # what the checkpoint was trained with
            out["checkpoint_image_position"] = self.checkpoint_image_position
        out.update(eos_token_id=self.tokenizer.eos_token_id, tokenizer=self.tokenizer_source,
                   vision_weights=m.vision_tower.source or ("checkpoint" if self.checkpoint else "random"))
        return out


def _resolve_checkpoint(ckpt: str) -> Path:
    p = Path(os.path.expanduser(ckpt))
    if p.is_dir():
        return p
    from mmeval.models.mamba.checkpoint import resolve_checkpoint_dir

    return resolve_checkpoint_dir(ckpt)  # a hub id (bare Mamba LM)
