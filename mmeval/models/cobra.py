"""Cobra (Zhao et al., 2024, arXiv 2403.14520): DINOv2 + SigLIP patches -> MLP projector -> Mamba LM.

What follows the released code (h-zhao1997/cobra) and its evaluation (Cobra's fork of TRI's harness,
h-zhao1997/vlm-evaluation at b0a691f, `vlm_eval/models/cobra.py`). That wrapper is TRI's prismatic
one (`vlm_eval/models/prismatic.py`) except for TextVQA with OCR tokens: Cobra's moves the
"Reference OCR token: ..." line before the question (b0a691f; its first commit fce0502 still built
TRI's order), and the order is worth 15 TextVQA points (Cobra's v4 Table 7: 58.2 OCR first, 43.0 OCR
last). The task builds that prompt (`tasks/textvqa.py`), not this module. The fork's `load` also casts
the whole VLM to bf16 (`vlm.to(device, dtype=bf16)`), A_log and D of the Mamba LM included, so its scans
read bf16-rounded values (log 3 = 1.0986 as 1.1016); here they stay float32 as mamba_ssm builds them
(`mmeval/models/mamba/fp32_params.py`): a small numeric difference in the SSM, not a prompt difference.

* model `cobra+3b` (`cobra/conf/models.py`): arch `no-align+fused-gelu-mlp`, vision
  `dinosiglip-vit-so-384px`, LLM `mamba-2.8b-zephyr` (xiuyul/mamba-2.8b-zephyr), image resize
  `resize-naive`, llm_max_length 2048. Ablations: `cobra-base+3b` (mamba-2.8b-slimpj),
  `cobra-siglip+3b` (SigLIP only, gelu-mlp), `cobra-ldpnet+3b` (fused-ldpnet).
* sequence: the GPT-NeoX tokenizer adds no BOS, and `CobraVLM.forward` concatenates
  `[projected patches, embed(prompt ids)]`: the image comes FIRST, before every text token
  (prismatic's "after BOS" becomes "at position 0" because there is no BOS). Labels of the
  patches are -100.
* prompt (`ZephyrChatPromptBuilder`, the 2024-05-23 "prompt format fix"): one user turn
  ``"<|user|>\n{msg}<|endoftext|>\n<|assistant|>\n"`` with ``msg = text.replace("<image>", "").strip()``,
  no system prompt; base Mamba LLMs use ``"In: {msg}\nOut: "`` (`MambaPromptBuilder`).
* decoding: greedy, max_new_tokens 128 (vlm-evaluation's default `max_length`), stops at the
  tokenizer's EOS (`<|endoftext|>`, id 0); the argmax runs over all embedding rows (Cobra's
  `decode` passes no vocab_size), so the LM's vocab_size is the padded row count (50280).

Checkpoint layout (released run dir, e.g. han1997/cobra `cobra+3b/`):
    config.json                         {"model": {"model_id", "arch_specifier", "vision_backbone_id",
                                          "llm_backbone_id", "image_resize_strategy", "llm_max_length"}, ...}
    checkpoints/latest-checkpoint.pt    {"model": {"projector": {...}, "llm_backbone": {...}}}
`projector` keys are those of the projector module (`projector.0.weight`, ...); `llm_backbone`
keys are Cobra's `MambaLLMBackbone` state dict: its `llm` attribute is a MambaForCausalLM with
mamba_ssm names, so every key is ``"llm." + <MambaLM key>`` (`llm.backbone.embedding.weight`,
`llm.backbone.layers.N.mixer.*`, `llm.backbone.layers.N.norm.weight`, `llm.backbone.norm_f.weight`,
`llm.lm_head.weight` (tied to the embedding)). The vision towers are not in the checkpoint: they
come from timm/HF files (see `vision_timm`). `checkpoints/latest-checkpoint.safetensors` may stand
in for the .pt (the same tensors under flat keys `projector.<key>` / `llm_backbone.<key>`, a tied
lm_head left out): the shipped demo model's format (`save_checkpoint_safetensors`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmeval.errors import CheckpointError
from mmeval.models.projectors import build_projector, projector_type
from mmeval.models.vision_timm import TINY_IMAGE_SIZE, VISION_BACKBONES, VisionBackbone

IGNORE_INDEX = -100
LLM_PREFIX = "llm."  # Cobra's MambaLLMBackbone keeps the MambaForCausalLM as `self.llm`
CHECKPOINT_FILE = Path("checkpoints") / "latest-checkpoint.pt"
SAFETENSORS_FILE = CHECKPOINT_FILE.with_suffix(".safetensors")  # the same state without pickle
HF_HUB_REPO = "han1997/cobra"

# Cobra's LLM registry (`cobra/models/backbones/llm/mamba.py`): id -> HF repo and prompt style
LLM_BACKBONES: dict[str, dict[str, str]] = {
    "mamba-2.8b-zephyr": {"hf_hub_path": "xiuyul/mamba-2.8b-zephyr", "prompt": "zephyr"},
    "mamba-2.8b-slimpj": {"hf_hub_path": "state-spaces/mamba-2.8b-slimpj", "prompt": "mamba"},
    "mamba-2.8b": {"hf_hub_path": "state-spaces/mamba-2.8b", "prompt": "mamba"},
    "mamba-1.4b": {"hf_hub_path": "state-spaces/mamba-1.4b", "prompt": "mamba"},
}
LLM_SIZES = {  # mamba_ssm sizes; vocab is the padded row count (50277 -> 50280)
    "2.8b": dict(d_model=2560, n_layer=64, vocab_size=50280),
    "1.4b": dict(d_model=2048, n_layer=48, vocab_size=50280),
}

# Released/registered model ids (`cobra/conf/models.py`)
MODEL_PRESETS: dict[str, dict[str, str]] = {
    "cobra+3b": dict(arch_specifier="no-align+fused-gelu-mlp", vision_backbone_id="dinosiglip-vit-so-384px",
                     llm_backbone_id="mamba-2.8b-zephyr"),
    "cobra-base+3b": dict(arch_specifier="no-align+fused-gelu-mlp", vision_backbone_id="dinosiglip-vit-so-384px",
                          llm_backbone_id="mamba-2.8b-slimpj"),
    "cobra-siglip+3b": dict(arch_specifier="no-align+gelu-mlp", vision_backbone_id="siglip-vit-so400m-384px",
                            llm_backbone_id="mamba-2.8b-zephyr"),
    "cobra-ldpnet+3b": dict(arch_specifier="no-align+fused-ldpnet", vision_backbone_id="dinosiglip-vit-so-384px",
                            llm_backbone_id="mamba-2.8b-zephyr"),
}

ZEPHYR_EOS = "<|endoftext|>"
MAX_NEW_TOKENS = 128  # vlm-evaluation's Cobra/Prismatic wrapper: max_length=128, do_sample=False


def llm_size(llm_backbone_id: str) -> dict[str, int]:
    for key, size in LLM_SIZES.items():
        if key in llm_backbone_id:
            return dict(size)
    raise ValueError(f"unknown LLM size for {llm_backbone_id!r}")


@dataclass
class CobraConfig:
    model_id: str = "cobra+3b"
    arch_specifier: str = "no-align+fused-gelu-mlp"
    vision_backbone_id: str = "dinosiglip-vit-so-384px"
    llm_backbone_id: str = "mamba-2.8b-zephyr"
    image_resize_strategy: str = "resize-naive"
    llm_max_length: int = 2048
    image_size: int = 384
    ldp_grid: int = 14  # LDP projectors pool the 27x27 grid to 14x14
    lm: dict[str, Any] = field(default_factory=dict)  # MambaConfig fields; {} -> the LLM's full size
    tiny: bool = False  # tiny timm towers (vision_timm.TINY_TOWER_OVERRIDES)

    def __post_init__(self):
        if self.vision_backbone_id not in VISION_BACKBONES:
            raise ValueError(
                f"unknown vision backbone {self.vision_backbone_id!r}; known: {', '.join(VISION_BACKBONES)}"
            )
        if self.llm_backbone_id not in LLM_BACKBONES:
            raise ValueError(f"unknown LLM {self.llm_backbone_id!r}; known: {', '.join(LLM_BACKBONES)}")
        projector_type(self.arch_specifier)  # validates

    @classmethod
    def preset(cls, model_id: str = "cobra+3b", **overrides) -> CobraConfig:
        if model_id not in MODEL_PRESETS:
            raise ValueError(f"unknown Cobra model {model_id!r}; known: {', '.join(MODEL_PRESETS)}")
        return cls(model_id=model_id, **{**MODEL_PRESETS[model_id], **overrides})

    @classmethod
    def tiny_config(cls, vocab_size: int = 64, **overrides) -> CobraConfig:
        """CPU-test sizes: 42-px images (3x3 patches), 32+48-dim towers, a 2-layer 32-dim Mamba."""
        lm = dict(d_model=32, n_layer=2, vocab_size=vocab_size, d_state=4)
        kw = dict(model_id="cobra-tiny", image_size=TINY_IMAGE_SIZE, ldp_grid=2, lm=lm, tiny=True)
        kw.update(overrides)
        return cls(**kw)

    @property
    def prompt_style(self) -> str:
        return LLM_BACKBONES[self.llm_backbone_id]["prompt"]

    def mamba_config(self):
        from mmeval.models.mamba import MambaConfig

        fields = self.lm or llm_size(self.llm_backbone_id)
        return MambaConfig(**fields)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CobraConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# ---- prompt --------------------------------------------------------------------------------
def build_prompt(message: str, style: str = "zephyr") -> str:
    """Cobra's single-turn prompt text (its PromptBuilder.add_turn("human", msg) + get_prompt())."""
    msg = message.replace("<image>", "").strip()
    if style == "zephyr":
        return f"<|user|>\n{msg}{ZEPHYR_EOS}\n<|assistant|>\n"
    if style == "mamba":
        return f"In: {msg}\nOut: "
    raise ValueError(f"unknown prompt style {style!r}")


def chat_segments(turns, has_image: bool = True, eos: str = ZEPHYR_EOS,
                  style: str = "zephyr") -> list[tuple[Any, bool]]:
    """The template as segments (`mmeval.models.chat`), one per `add_turn` of Cobra's PromptBuilder
    (FinetuneDataset tokenises each turn on its own): the image first (the patches precede every
    text token), then per turn the user prompt (`build_prompt`; turns after the first open with
    "\\n") and the target reply "{reply}{eos}" (an empty reply is " ")."""
    from mmeval.models.chat import IMAGE

    segs: list[tuple[Any, bool]] = [(IMAGE, False)] if has_image else []
    for i, (user, answer) in enumerate(turns):
        segs.append((("" if i == 0 else "\n") + build_prompt(user, style), False))
        if answer is not None:
            segs.append(((answer or " ") + eos, True))
    return segs


def chat_template(tokenizer, style: str = "zephyr"):
    """Cobra's `ChatTemplate` (chat: `chat_segments`; align: AlignDataset's "{caption}{eos}" after
    the patches) bound to `tokenizer`: no BOS, the image before the first text token."""
    from mmeval.models.chat import ChatTemplate

    eos = tokenizer.eos_token or ZEPHYR_EOS
    return ChatTemplate(tokenizer, lambda turns, has_image: chat_segments(turns, has_image, eos, style),
                        plain_terminator=eos)


def encode_prompt(tokenizer, message: str, style: str = "zephyr") -> list[int]:
    """Token ids of the templated prompt. The GPT-NeoX tokenizer Cobra uses adds no BOS/EOS, so
    none are added here whatever the local tokenizer's defaults are."""
    from mmeval.models.chat import encode_text

    return encode_text(tokenizer, build_prompt(message, style))


def build_tiny_tokenizer(words: list[str] | None = None):
    """An in-memory word-level tokenizer (seed-free, no files) that keeps the template's newlines and
    special tokens: ids 0..4 are <|endoftext|>, <|padding|>, <unk>, <|user|>, <|assistant|>; 5 is "\\n"."""
    from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|padding|>", "<unk>", "<|user|>", "<|assistant|>"]
    words = words or ("Yes No yes no is there a an the in on of image picture photo cat dog car person "
                      "Answer answer question using single word or phrase What what color How many "
                      "Is Are this these red blue green one two three A B C D True False").split()
    words += list("?.,:;'\"!()-")
    vocab: dict[str, int] = {}
    for t in specials + ["\n"] + words:
        vocab.setdefault(t, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\s*\n\s*"), "isolated"),
        pre_tokenizers.Split(Regex(r"[^\S\n]+"), "removed"),
        pre_tokenizers.Split(Regex(r"[^\w\s]"), "isolated"),
    ])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|padding|>",
                                   unk_token="<unk>")


# ---- the model -----------------------------------------------------------------------------
@dataclass
class CobraOutput:
    logits: torch.Tensor
    loss: torch.Tensor | None = None
    lengths: torch.Tensor | None = None
    labels: torch.Tensor | None = None


class Cobra(nn.Module):
    """Vision towers + projector + MambaLM. `encode_images` and `lm` are what VLMRuntime needs;
    `prepare_inputs` / `forward` are the training entry points."""

    def __init__(self, cfg: CobraConfig, device=None, dtype=None, kernel: str = "auto",
                 vision_weights: str | os.PathLike | Mapping[str, str] | None = None):
        super().__init__()
        from mmeval.models.mamba import MambaLM

        self.cfg = cfg
        self.vision = VisionBackbone(cfg.vision_backbone_id, cfg.image_size, cfg.image_resize_strategy,
                                     tiny=cfg.tiny, weights=vision_weights, device=device)
        self.lm = MambaLM(cfg.mamba_config(), device=device, dtype=dtype, kernel=kernel)
        # Cobra seeds the projector init with the vision embed dim
        self.projector = build_projector(cfg.arch_specifier, self.vision.embed_dim, self.lm.config.d_model,
                                         ldp_grid=cfg.ldp_grid, seed=self.vision.embed_dim)
        self.vision.to(device=device, dtype=dtype)
        self.projector.to(device=device, dtype=dtype)

    @property
    def image_transform(self):
        return self.vision.image_transform

    @property
    def num_image_tokens(self) -> int:
        return self.projector.num_output_tokens(self.vision.num_patches)

    def encode_images(self, pixel_values) -> torch.Tensor:
        """[N, 3, H, W] or {"dino": ..., "siglip": ...} -> [N, P, d_model] (P = 729 for cobra+3b)."""
        feats = self.vision(pixel_values)
        w = next(self.projector.parameters())
        return self.projector(feats.to(w.dtype))

    def prepare_inputs(self, input_ids: torch.Tensor, lengths: torch.Tensor, pixel_values=None,
                       labels: torch.Tensor | None = None, has_image: torch.Tensor | None = None):
        """Right-padded text [B, L] (+ lengths [B]) -> (inputs_embeds [B, P+L, D], lengths + P, labels).

        Image rows get `[patches, text]` (Cobra: patches at position 0, no BOS); rows with
        `has_image` False get `[text, P zero pads]` and keep their length (as Cobra's unimodal rows).
        Patch and padding labels are -100."""
        device = self.lm.device
        input_ids = input_ids.to(device)
        lengths = torch.as_tensor(lengths, dtype=torch.long, device=device).view(-1)
        text = self.lm.embed(input_ids)
        if labels is not None:
            labels = labels.to(device).clone()
            pos = torch.arange(labels.shape[1], device=device)[None]
            labels[pos >= lengths[:, None]] = IGNORE_INDEX
        if pixel_values is None:
            return text, lengths, labels
        B = input_ids.shape[0]
        if has_image is None:
            has_image = torch.ones(B, dtype=torch.bool, device=device)
        has_image = torch.as_tensor(has_image, dtype=torch.bool, device=device).view(-1)
        idx = has_image.nonzero().view(-1)
        if isinstance(pixel_values, Mapping):
            pv = {k: v.to(device)[idx] if v.shape[0] == B else v.to(device) for k, v in pixel_values.items()}
        else:
            pv = pixel_values.to(device)
            pv = pv[idx] if pv.shape[0] == B else pv
        patches = self.encode_images(pv).to(text.dtype)  # [n_img, P, D]
        P = patches.shape[1]
        embeds = torch.zeros(B, P + text.shape[1], text.shape[2], dtype=text.dtype, device=device)
        new_lengths = lengths.clone()
        embeds[~has_image, : text.shape[1]] = text[~has_image]
        embeds[has_image, :P] = patches
        embeds[has_image, P:] = text[has_image]
        new_lengths[has_image] += P
        new_labels = None
        if labels is not None:
            new_labels = torch.full((B, P + labels.shape[1]), IGNORE_INDEX, dtype=labels.dtype, device=device)
            new_labels[has_image, P:] = labels[has_image]
            new_labels[~has_image, : labels.shape[1]] = labels[~has_image]
        return embeds, new_lengths, new_labels

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor, pixel_values=None,
                labels: torch.Tensor | None = None, has_image: torch.Tensor | None = None) -> CobraOutput:
        """Logits over the multimodal sequence [B, P+L, V]; with `labels` [B, L] also the mean
        next-token cross-entropy over labelled positions (HF's shift-inside-the-model convention)."""
        embeds, lens, labs = self.prepare_inputs(input_ids, lengths, pixel_values, labels, has_image)
        out = self.lm(inputs_embeds=embeds, lengths=lens, logits="all")
        loss = None
        if labs is not None:
            logits = out.logits[:, :-1].float()
            target = labs[:, 1:]
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE_INDEX)
        return CobraOutput(logits=out.logits, loss=loss, lengths=lens, labels=labs)

    # ---- checkpoint ------------------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, dict[str, torch.Tensor]]:
        """{"projector": ..., "llm_backbone": {"llm." + MambaLM key: ...}} as Cobra saves it."""
        proj = {k: v.detach().cpu() for k, v in self.projector.state_dict().items()}
        llm = {LLM_PREFIX + k: v.detach().cpu() for k, v in self.lm.state_dict().items()}
        if self.lm.config.tie_embeddings:
            llm[LLM_PREFIX + "lm_head.weight"] = llm[LLM_PREFIX + "backbone.embedding.weight"]
        return {"projector": proj, "llm_backbone": llm}

    def load_checkpoint_state(self, model_sd: Mapping[str, Mapping[str, torch.Tensor]], where: str = "checkpoint"):
        """Strictly load {"projector", "llm_backbone"}; a mismatch raises one CheckpointError line naming keys."""
        for part in ("projector", "llm_backbone"):
            if part not in model_sd:
                raise CheckpointError(f"{where}: missing '{part}' in checkpoint['model'] "
                                      f"(has: {', '.join(sorted(model_sd)) or 'nothing'})")
        _strict_load(self.projector, dict(model_sd["projector"]), f"{where} [projector]")
        llm_sd = dict(model_sd["llm_backbone"])
        bad = [k for k in llm_sd if not k.startswith(LLM_PREFIX)]
        if bad:
            raise CheckpointError(f"{where} [llm_backbone] has unexpected keys: {_names(bad)} "
                                  f"(expected every key to start with '{LLM_PREFIX}')")
        sd = {k[len(LLM_PREFIX):]: v for k, v in llm_sd.items()}
        if self.lm.config.tie_embeddings:
            head, emb = sd.get("lm_head.weight"), sd.get("backbone.embedding.weight")
            if (
                head is not None
                and emb is not None
                and head.data_ptr() != emb.data_ptr()
                and not torch.equal(head, emb)
            ):
                raise CheckpointError(f"{where} [llm_backbone]: llm.lm_head.weight differs from "
                                      "llm.backbone.embedding.weight but the model ties them")
            sd.pop("lm_head.weight", None)
        expected = [k for k in self.lm.state_dict() if not (self.lm.config.tie_embeddings and k == "lm_head.weight")]
        _check_keys(sd, expected, f"{where} [llm_backbone]", prefix=LLM_PREFIX)
        _check_shapes(sd, self.lm, f"{where} [llm_backbone]", prefix=LLM_PREFIX)
        self.lm.load_state_dict(sd, strict=False)
        self.lm.tie_weights()
        return self


def _names(keys, n: int = 6) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def _check_keys(sd: Mapping[str, Any], expected, where: str, prefix: str = "") -> None:
    exp = set(expected)
    missing = [prefix + k for k in exp if k not in sd]
    unexpected = [prefix + k for k in sd if k not in exp]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_names(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_names(unexpected)}")
        raise CheckpointError(f"{where} does not match the model: {'; '.join(parts)}")


def _check_shapes(sd: Mapping[str, torch.Tensor], module: nn.Module, where: str, prefix: str = "") -> None:
    own = module.state_dict()
    bad = [f"{prefix}{k} {tuple(v.shape)} vs model {tuple(own[k].shape)}" for k, v in sd.items()
           if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise CheckpointError(f"{where} has wrong shapes: {'; '.join(bad[:3])}" + (" ..." if len(bad) > 3 else ""))


def _strict_load(module: nn.Module, sd: dict, where: str) -> None:
    _check_keys(sd, module.state_dict().keys(), where)
    _check_shapes(sd, module, where)
    module.load_state_dict(sd, strict=True)


# ---- run-dir IO ----------------------------------------------------------------------------
def resolve_run_dir(path_or_id: str | os.PathLike) -> Path:
    """A run dir (config.json + checkpoints/latest-checkpoint.pt), a dir holding `<model_id>/` run dirs
    (a han1997/cobra snapshot), the .pt file itself, or a model id found in the local HF hub cache."""
    p = Path(os.path.expanduser(str(path_or_id)))
    if p.is_file() and p.suffix == ".pt":
        p = p.parent.parent if p.parent.name == "checkpoints" else p.parent
    if p.is_dir():
        if (p / "config.json").is_file() and checkpoint_file(p) is not None:
            return p
        subs = [d for d in sorted(p.iterdir()) if d.is_dir() and (d / "config.json").is_file()
                and checkpoint_file(d) is not None]
        if len(subs) == 1:
            return subs[0]
        if (p / "cobra+3b" / "config.json").is_file():
            return p / "cobra+3b"
        raise CheckpointError(f"{p} is not a Cobra run dir: expected config.json and {CHECKPOINT_FILE}")
    name = str(path_or_id)
    if name in MODEL_PRESETS:
        try:
            from huggingface_hub import try_to_load_from_cache

            cfg = try_to_load_from_cache(HF_HUB_REPO, f"{name}/config.json")
            ckpt = try_to_load_from_cache(HF_HUB_REPO, f"{name}/{CHECKPOINT_FILE.as_posix()}")
            if isinstance(cfg, str) and isinstance(ckpt, str):
                return Path(cfg).parent
        except Exception:  # pragma: no cover - hub helper missing or cache unreadable
            pass
        raise CheckpointError(f"Cobra checkpoint {name!r} is not available locally: download {HF_HUB_REPO} "
                              f"({name}/config.json and {name}/{CHECKPOINT_FILE.as_posix()}) and pass checkpoint=DIR")
    raise CheckpointError(f"Cobra checkpoint not found: {p}")


def read_run_config(run_dir: Path) -> CobraConfig:
    try:
        raw = json.loads((run_dir / "config.json").read_text())
    except Exception as exc:
        raise CheckpointError(f"cannot read {run_dir / 'config.json'}: {type(exc).__name__}: {exc}") from None
    if "model" not in raw or not isinstance(raw["model"], Mapping):
        raise CheckpointError(f"{run_dir / 'config.json'} has no 'model' section (not a Cobra run dir)")
    m = raw["model"]
    extra = (raw.get("mmeval") or {}).get("cobra_config") or {}
    kw = dict(extra)
    for k in ("model_id", "arch_specifier", "vision_backbone_id", "llm_backbone_id", "image_resize_strategy",
              "llm_max_length"):
        if k in m:
            kw[k] = m[k]
    try:
        return CobraConfig.from_json(kw)
    except ValueError as exc:
        raise CheckpointError(f"{run_dir / 'config.json'}: {exc}") from None


def checkpoint_file(run_dir: Path) -> Path | None:
    """The run dir's checkpoint file: the released .pt, else the .safetensors form; None if neither."""
    return next((run_dir / f for f in (CHECKPOINT_FILE, SAFETENSORS_FILE) if (run_dir / f).is_file()), None)


def save_checkpoint_safetensors(model_sd: Mapping[str, Mapping[str, torch.Tensor]], file: str | os.PathLike) -> Path:
    """Write {"projector": ..., "llm_backbone": ...} (what `read_checkpoint` returns) as one safetensors
    file with keys `<part>.<key>`; a tensor sharing another's storage (the tied lm_head) is left out."""
    from safetensors.torch import save_file

    flat, seen = {}, set()
    for part, sd in model_sd.items():
        for k, v in sd.items():
            if (v.data_ptr(), v.shape) in seen:
                continue
            seen.add((v.data_ptr(), v.shape))
            flat[f"{part}.{k}"] = v.detach().cpu().contiguous()
    f = Path(file)
    f.parent.mkdir(parents=True, exist_ok=True)
    save_file(flat, str(f))
    return f


def read_checkpoint(run_dir: Path) -> dict:
    f = checkpoint_file(run_dir)
    if f is None:
        raise CheckpointError(f"missing {CHECKPOINT_FILE} in {run_dir}")
    if f.suffix == ".safetensors":
        return _read_safetensors_checkpoint(f)
    try:
        try:
            obj = torch.load(str(f), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:
            obj = torch.load(str(f), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read {f}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    if not isinstance(obj, Mapping) or "model" not in obj:
        raise CheckpointError(f"{f} has no 'model' entry (expected {{'model': {{'projector', 'llm_backbone'}}}})")
    return obj["model"]


def _read_safetensors_checkpoint(f: Path) -> dict:
    from safetensors.torch import load_file

    try:
        flat = load_file(str(f))
    except Exception as exc:
        raise CheckpointError(f"cannot read {f}: {type(exc).__name__}: {exc}") from None
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, v in flat.items():
        part, _, name = key.partition(".")
        out.setdefault(part, {})[name] = v
    return out


def lm_sizes_from_checkpoint(llm_sd: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """d_model, n_layer, vocab (rows) and SSM sizes read off the llm_backbone tensors."""
    emb = llm_sd.get(LLM_PREFIX + "backbone.embedding.weight")
    if emb is None:
        raise CheckpointError("checkpoint [llm_backbone] is missing keys: llm.backbone.embedding.weight")
    layers = {int(k.split(".")[3]) for k in llm_sd if k.startswith(LLM_PREFIX + "backbone.layers.")}
    out = dict(vocab_size=int(emb.shape[0]), d_model=int(emb.shape[1]), n_layer=len(layers))
    a = llm_sd.get(LLM_PREFIX + "backbone.layers.0.mixer.A_log")
    conv = llm_sd.get(LLM_PREFIX + "backbone.layers.0.mixer.conv1d.weight")
    if a is not None:
        out["d_state"] = int(a.shape[1])
        out["expand"] = int(a.shape[0]) // out["d_model"]
    if conv is not None:
        out["d_conv"] = int(conv.shape[-1])
    return out


def load_cobra(path_or_id: str | os.PathLike, device=None, dtype=None, kernel: str = "auto",
               vision_weights: str | os.PathLike | Mapping[str, str] | None = None,
               overrides: Mapping[str, Any] | None = None) -> tuple[Cobra, Path]:
    """A Cobra model from a released-layout run dir. Vision towers come from `vision_weights`
    (a dir / per-tower files; None: random towers, only sensible for tests)."""
    run_dir = resolve_run_dir(path_or_id)
    cfg = read_run_config(run_dir)
    model_sd = read_checkpoint(run_dir)
    if not cfg.lm and isinstance(model_sd.get("llm_backbone"), Mapping):
        cfg.lm = lm_sizes_from_checkpoint(model_sd["llm_backbone"])
    for k, v in (overrides or {}).items():
        if getattr(cfg, k) != v:
            raise CheckpointError(f"{k}={v} does not match the checkpoint's {k}={getattr(cfg, k)} ({run_dir})")
    model = _build_for_load(cfg, device, dtype, kernel, vision_weights)
    model.load_checkpoint_state(model_sd, where=f"checkpoint {checkpoint_file(run_dir)}")
    return model.eval(), run_dir


def _build_for_load(cfg: CobraConfig, device, dtype, kernel, vision_weights) -> Cobra:
    """Build the model with LM/projector on the meta device (weights come from the checkpoint),
    vision towers materialised normally (random or from their own files)."""
    model = Cobra.__new__(Cobra)
    nn.Module.__init__(model)
    from mmeval.models.mamba import MambaLM

    model.cfg = cfg
    model.vision = VisionBackbone(cfg.vision_backbone_id, cfg.image_size, cfg.image_resize_strategy,
                                  tiny=cfg.tiny, weights=vision_weights, device=device).to(dtype=dtype)
    with torch.device("meta"):
        model.lm = MambaLM(cfg.mamba_config(), dtype=dtype, kernel=kernel)
        model.projector = build_projector(cfg.arch_specifier, model.vision.embed_dim, model.lm.config.d_model,
                                          ldp_grid=cfg.ldp_grid, dtype=dtype)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    model.lm = model.lm.to_empty(device=dev)
    model.lm.tie_weights()
    model.projector = model.projector.to_empty(device=dev)
    return model


def save_cobra(model: Cobra, run_dir: str | os.PathLike) -> Path:
    """Write `run_dir/config.json` + `run_dir/checkpoints/latest-checkpoint.pt` in Cobra's layout
    (config.json's "model" section as Cobra's; our full config under "mmeval")."""
    d = Path(run_dir)
    (d / "checkpoints").mkdir(parents=True, exist_ok=True)
    c = model.cfg
    cfg = dataclasses.replace(c, lm=dataclasses.asdict(model.lm.config))
    raw = {"model": {"model_id": c.model_id, "arch_specifier": c.arch_specifier,
                     "vision_backbone_id": c.vision_backbone_id, "llm_backbone_id": c.llm_backbone_id,
                     "image_resize_strategy": c.image_resize_strategy, "llm_max_length": c.llm_max_length},
           "mmeval": {"cobra_config": cfg.to_json()}}
    (d / "config.json").write_text(json.dumps(raw, indent=2))
    torch.save({"model": model.checkpoint_state()}, d / CHECKPOINT_FILE)
    return d
