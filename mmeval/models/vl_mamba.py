"""VL-Mamba (Qiao et al., "VL-Mamba: Exploring State Space Models for Multimodal Learning",
arXiv 2403.13600): a vision tower (CLIP-ViT-L/14-336 or SigLIP-SO400M/14-384, LLaVA-style patch
features), a MultiModal Connector (MLP | VSS-MLP | VSS-L2 with the BSM or CSM 2D scan, see
``connectors.py`` / ``vss.py``) and a pretrained Mamba LM; the projected image tokens replace the
``<image>`` placeholder of a LLaVA-1.5 (vicuna_v1) prompt, placed per ``image_position`` (LLaVA's
place, or before the whole prompt as the paper's Eq. 7: ``PROMPT_TEMPLATE_DOC``).

Paper default: SigLIP-SO + VSS-L2 + BSM + Mamba-2.8B-SlimPajama. Ablation axes
(``VLMambaConfig``): ``encoder`` clip|siglip, ``mmc`` mlp|vss-mlp|vss-l2, ``scan`` bsm|csm, ``llm``
one of ``LLM_PRESETS`` (two of which the paper does not use: ``in_paper``); ``tiny=True`` gives
test-sized towers/LM with the same structure.

No VL-Mamba weights are public; the checkpoint layout is defined here, LLaVA-style:

``config.json``
    the LM's state-spaces config (``d_model``, ``n_layer``, ``vocab_size``, ``ssm_cfg``, ...; what
    mamba_ssm reads) plus LLaVA's multimodal fields ``mm_vision_tower``, ``mm_projector_type``
    (mlp2x_gelu | vss_mlp | vss_l2), ``mm_hidden_size``, ``mm_vision_select_layer``,
    ``mm_vision_select_feature``, ``image_aspect_ratio``, and ours: ``mm_vss_scan`` (bsm|csm),
    ``mm_vision_config`` (the tower's config dict, so no download is needed to build it),
    ``mm_vision_tower_included`` and ``vl_mamba`` (the VLMambaConfig).
``model.safetensors``
    the LM under mamba_ssm names (``backbone.*``, ``lm_head.weight`` omitted when tied), the
    connector under ``mm_projector.*`` and, when included, the tower under
    ``vision_tower.vision_model.*`` (the published CLIP/SigLIP names). Keys are checked strictly.

Also accepted (what LLaVA stage-1 training starts from / writes): a bare state-spaces Mamba
checkpoint directory plus a connector file ``mm_projector.bin`` (keys ``model.mm_projector.*`` or
``mm_projector.*``), with the VL-Mamba settings given by the caller.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmeval.errors import CheckpointError
from mmeval.models.connectors import MMC_TYPES, PROJECTOR_TYPES, build_connector
from mmeval.models.vision_hf import (
    ENCODERS,
    HUB_IDS,
    ImagePreprocess,
    VisionTower,
    load_vision_tower,
    vision_config_dict,
)
from mmeval.models.vss import SCAN_MODES

IGNORE_INDEX = -100
IMAGE_TOKEN_INDEX = -200  # LLaVA's placeholder id for <image> in token-id sequences
IMAGE_PLACEHOLDER = "<image>"
EOS_TOKEN = "<|endoftext|>"

# ------------------------------------------------------------------------------ prompt template
SYSTEM_PROMPT = ("A chat between a curious human and an artificial intelligence assistant. "
                 "The assistant gives helpful, detailed, and polite answers to the human's questions.")
IMAGE_POSITIONS = ("llava", "first")  # where the image tokens go: `image_position` (VLMambaConfig)
PROMPT_TEMPLATE_DOC = """\
The VL-Mamba prompt: LLaVA-1.5's conv_vicuna_v1 (llava/conversation.py, sep_style TWO, sep " ",
sep2 "</s>") with the GPT-NeoX tokenizer of the Mamba LMs. The paper says it follows LLaVA and
prints no template, and does not say where the image goes; this is the one place where the choice
is made (`chat_segments`, which both inference and training use):

    image_position=llava (default):
    <|endoftext|>{SYSTEM} USER: <image>\\n{prompt} ASSISTANT:            (generation)
    ... ASSISTANT: {answer}<|endoftext|>USER: {next} ASSISTANT: ...      (training turns)
    image_position=first:
    <|endoftext|><image>{SYSTEM} USER: {prompt} ASSISTANT:

* BOS: LLaVA's LLaMA tokenizer prepends <s>; GPT-NeoX has no BOS, and the Mamba LMs saw
  documents separated by <|endoftext|> (id 0), so <|endoftext|> is prepended as the BOS.
* sep2 "</s>" (LLaMA's EOS, closing each assistant turn) becomes <|endoftext|>, GPT-NeoX's EOS,
  so generation stops at EOS (VLMRuntime's eos_token_id).
* `llava`: the image goes where LLaVA-1.5 puts it, "<image>\\n" at the start of the first user turn
  (after "USER: "). As in LLaVA's tokenizer_image_token, the text is split at "<image>" and each chunk
  tokenized on its own (no special tokens), so the ids before the image are [BOS] + tok("{SYSTEM} USER: ")
  and those after it tok("\\n{prompt} ASSISTANT:") -- the split VLMRuntime caches on.
* `first`: the image tokens before the whole text prompt, as the paper's Eq. 7 writes the LLM input
  (the image tokens, then the text tokens); only the BOS precedes them, as in the alignment stage's
  "plain" template ([BOS] <image> caption). The ids before the image are [BOS], those after it
  tok("{SYSTEM} USER: {prompt} ASSISTANT:"), so one post-image state serves every question on an image.
* Without an image the user turn is just "{prompt}" (both positions).
* The position is part of the model: a checkpoint records it (config.json `vl_mamba.image_position`;
  configs written before it existed mean `llava`), finetuning trains with it and evaluation asks with
  it unless `image_position=` overrides it.
"""


def check_image_position(value: str) -> str:
    if value not in IMAGE_POSITIONS:
        raise ValueError(f"image_position must be one of {', '.join(IMAGE_POSITIONS)}, got {value!r}")
    return value


def chat_segments(turns: Sequence[tuple[str, str | None]], has_image: bool = True,
                  eos: str = EOS_TOKEN, image_position: str = "llava") -> list[tuple[Any, bool]]:
    """The template as segments (`mmeval.models.chat`): "{SYSTEM} USER: " [IMAGE "\\n"]{msg} " ASSISTANT:",
    then the target " {answer}{eos}", then "USER: {msg} ASSISTANT:" ... (LLaVA-v1's rounds, joined
    without separator). A last turn with answer None ends at "ASSISTANT:" (generation).
    `image_position` "first": IMAGE, then the same rounds without an image."""
    from mmeval.models.chat import IMAGE

    check_image_position(image_position)
    segs: list[tuple[Any, bool]] = []
    if has_image and image_position == "first":
        segs.append((IMAGE, False))
        has_image = False
    for i, (user, answer) in enumerate(turns):
        head = (SYSTEM_PROMPT + " ") if i == 0 else ""
        if i == 0 and has_image:  # LLaVA moves <image> to the front of the first message: "<image>\\n{msg}"
            segs += [(head + "USER: ", False), (IMAGE, False), (f"\n{user} ASSISTANT:", False)]
        else:
            segs.append((f"{head}USER: {user} ASSISTANT:", False))
        if answer is not None:
            segs.append((f" {answer}{eos}", True))
    return segs


def conversation_text(turns: Sequence[tuple[str, str | None]], has_image: bool = True,
                      image_position: str = "llava") -> str:
    """Multi-turn LLaVA v1 text; a final turn with answer None ends at "ASSISTANT:" (generation)."""
    from mmeval.models.chat import render

    return render(chat_segments(turns, has_image, image_position=image_position), IMAGE_PLACEHOLDER)


def build_prompt(prompt: str, has_image: bool = True, image_position: str = "llava") -> str:
    """The single-turn generation prompt (text, with the <image> placeholder)."""
    return conversation_text([(prompt, None)], has_image, image_position)


PROMPT_TEMPLATE = build_prompt("{prompt}")


def bos_token_id(tokenizer) -> int:
    for name in ("bos_token_id", "eos_token_id"):
        v = getattr(tokenizer, name, None)
        if v is not None:
            return int(v)
    v = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    if v is None:
        raise CheckpointError(f"tokenizer has no {EOS_TOKEN} token")
    return int(v)


def chat_template(tokenizer, image_position: str = "llava"):
    """VL-Mamba's `ChatTemplate` (chat: `chat_segments` with the image at `image_position`; align: LLaVA
    `--version plain`, [BOS] <image> "{caption}\\n") bound to `tokenizer`."""
    from mmeval.models.chat import ChatTemplate

    eos = tokenizer.eos_token or EOS_TOKEN
    check_image_position(image_position)
    return ChatTemplate(tokenizer, lambda turns, has_image: chat_segments(turns, has_image, eos, image_position),
                        plain_terminator="\n", bos_id=bos_token_id(tokenizer), image_token_id=IMAGE_TOKEN_INDEX)


def tokenize_with_image(text: str, tokenizer, image_token_id: int = IMAGE_TOKEN_INDEX,
                        add_bos: bool = True) -> list[int]:
    """LLaVA's tokenizer_image_token for GPT-NeoX: BOS + chunks split at <image>, tokenized
    separately, joined by ``image_token_id``."""
    from mmeval.models.chat import encode_text

    ids = [bos_token_id(tokenizer)] if add_bos else []
    for j, chunk in enumerate(text.split(IMAGE_PLACEHOLDER)):
        if j:
            ids.append(image_token_id)
        ids.extend(encode_text(tokenizer, chunk))
    return ids


def split_prompt_ids(tokenizer, prompt: str, has_image: bool, image_position: str = "llava"):
    """(before_image ids, after_image ids) of the generation prompt; their concatenation with
    the image in between is exactly ``tokenize_with_image(build_prompt(prompt, image_position=...))``."""
    split = chat_template(tokenizer, image_position).prompt_split(prompt, has_image)
    return split.before_image, split.after_image


def build_tiny_tokenizer():
    """A byte-level tokenizer (<|endoftext|> = id 0, then the 256 byte symbols, no merges) built
    in memory with `tokenizers`: every string encodes, ids < 257. For tiny/random-init models."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {EOS_TOKEN: 0}
    for ch in alphabet:
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([EOS_TOKEN])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS_TOKEN, pad_token=EOS_TOKEN)


# ------------------------------------------------------------------------------ configuration
# The paper's LMs (its LLM ablation, Table 2: Mamba-1.4B, Mamba-2.8B-Pile, Mamba-2.8B-SlimPajama) plus
# two it does not use (in_paper False): the other state-spaces size and Cobra's zephyr fine-tune; shapes
# from each hub config.json.
LLM_PRESETS: dict[str, dict[str, Any]] = {
    "mamba-790m": {"hub_id": "state-spaces/mamba-790m", "d_model": 1536, "n_layer": 48, "in_paper": False},
    "mamba-1.4b": {"hub_id": "state-spaces/mamba-1.4b", "d_model": 2048, "n_layer": 48, "in_paper": True},
    "mamba-2.8b": {"hub_id": "state-spaces/mamba-2.8b", "d_model": 2560, "n_layer": 64, "in_paper": True,
                   "note": "Pile"},
    "mamba-2.8b-slimpj": {"hub_id": "state-spaces/mamba-2.8b-slimpj", "d_model": 2560, "n_layer": 64,
                          "in_paper": True, "note": "default, the paper's choice"},
    "mamba-2.8b-zephyr": {"hub_id": "xiuyul/mamba-2.8b-zephyr", "d_model": 2560, "n_layer": 64, "in_paper": False,
                          "note": "Cobra's LM"},
}
NOT_IN_PAPER = "not in the VL-Mamba paper"


def llm_in_paper(llm: str) -> bool:
    """Whether the VL-Mamba paper trains with this LLM preset (a name outside the presets: False)."""
    return bool(LLM_PRESETS.get(LLM_ALIASES.get(llm, llm), {}).get("in_paper"))


def llm_choices_help() -> str:
    """The `llm=` choices, each marked with what it is and whether the paper uses it."""
    parts = []
    for name, p in LLM_PRESETS.items():
        notes = ([p["note"]] if p.get("note") else []) + ([] if p["in_paper"] else [NOT_IN_PAPER])
        parts.append(name + (f" ({'; '.join(notes)})" if notes else ""))
    return " | ".join(parts)
LLM_ALIASES = {"mamba-2.8b-pile": "mamba-2.8b", "slimpj": "mamba-2.8b-slimpj", "zephyr": "mamba-2.8b-zephyr"}
TINY_LM = {"d_model": 32, "n_layer": 2, "vocab_size": 257, "ssm_cfg": {"d_state": 8}, "rms_norm": True,
           "residual_in_fp32": True, "fused_add_norm": True, "pad_vocab_size_multiple": 8}


def _lm_dict(llm: str, tiny: bool) -> dict[str, Any]:
    if tiny:
        return json.loads(json.dumps(TINY_LM))
    p = LLM_PRESETS[llm]
    return {"d_model": p["d_model"], "n_layer": p["n_layer"], "vocab_size": 50277, "ssm_cfg": {},
            "rms_norm": True, "residual_in_fp32": True, "fused_add_norm": True, "pad_vocab_size_multiple": 8}


@dataclass
class VLMambaConfig:
    encoder: str = "siglip"
    mmc: str = "vss-l2"
    scan: str = "bsm"
    llm: str = "mamba-2.8b-slimpj"
    tiny: bool = False
    # LLaVA-1.5 settings
    vision_select_layer: int = -2
    vision_select_feature: str = "patch"
    image_aspect_ratio: str = "pad"
    # where the image tokens go in the prompt (PROMPT_TEMPLATE_DOC): "llava" | "first" (the paper's Eq. 7)
    image_position: str = "llava"
    # VSS hyper-parameters (paper-silent: VMamba SS2D defaults)
    vss_d_state: int = 16
    vss_expand: float = 2.0
    vss_d_conv: int = 3
    # sources / overrides (filled when read from a checkpoint)
    vision_tower: str | None = None  # mm_vision_tower: hub id or folder of the pretrained tower
    vision_config: dict | None = None
    lm_config: dict | None = None  # state-spaces config dict

    def __post_init__(self):
        self.llm = LLM_ALIASES.get(self.llm, self.llm)
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.mmc not in MMC_TYPES:
            raise ValueError(f"mmc must be one of {MMC_TYPES}, got {self.mmc!r}")
        if self.scan not in SCAN_MODES:
            raise ValueError(f"scan must be one of {SCAN_MODES}, got {self.scan!r}")
        check_image_position(self.image_position)
        if self.llm not in LLM_PRESETS and self.lm_config is None:
            raise ValueError(f"llm must be one of {', '.join(LLM_PRESETS)}, got {self.llm!r}")
        if self.vision_tower is None and not self.tiny:
            self.vision_tower = HUB_IDS[self.encoder]
        if self.vision_config is None:
            self.vision_config = vision_config_dict(self.encoder, self.tiny)
        if self.lm_config is None:
            self.lm_config = _lm_dict(self.llm, self.tiny)

    @classmethod
    def paper_default(cls, **kw) -> VLMambaConfig:
        return cls(**kw)

    def mamba_config(self):
        from mmeval.models.mamba import MambaConfig

        return MambaConfig.from_dict(self.lm_config)

    @property
    def llm_hub_id(self) -> str | None:
        return LLM_PRESETS.get(self.llm, {}).get("hub_id")

    def to_json(self) -> dict[str, Any]:
        """The fields, plus `llm_in_paper` (derived, ignored by `from_json`): False for the LLM presets the
        paper does not use (mamba-790m, mamba-2.8b-zephyr), so a checkpoint and a result say so."""
        return {**dataclasses.asdict(self), "llm_in_paper": llm_in_paper(self.llm)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VLMambaConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def llava_config(self, vision_tower_included: bool) -> dict[str, Any]:
        """config.json: the LM's state-spaces dict + LLaVA's mm_* fields + ours."""
        out = dict(self.lm_config)
        out.update({
            "architectures": ["VLMambaForCausalLM"],
            "mm_vision_tower": self.vision_tower,
            "mm_projector_type": PROJECTOR_TYPES[self.mmc],
            "mm_hidden_size": int(self.vision_config["hidden_size"]),
            "mm_vision_select_layer": self.vision_select_layer,
            "mm_vision_select_feature": self.vision_select_feature,
            "image_aspect_ratio": self.image_aspect_ratio,
            "mm_vss_scan": self.scan,
            "mm_vision_config": self.vision_config,
            "mm_vision_tower_included": bool(vision_tower_included),
            "vl_mamba": self.to_json(),
        })
        return out

    def preprocess(self) -> ImagePreprocess:
        return ImagePreprocess.for_encoder(self.encoder, int(self.vision_config["image_size"]),
                                           self.image_aspect_ratio)


# ------------------------------------------------------------------------------ the model
@dataclass
class VLMambaOutput:
    logits: Tensor
    loss: Tensor | None = None
    labels: Tensor | None = None
    lengths: Tensor | None = None


class VLMamba(nn.Module):
    """vision_tower -> mm_projector (MMC) -> Mamba LM (``lm``)."""

    def __init__(self, cfg: VLMambaConfig, device=None, dtype=None, kernel: str = "auto",
                 vision_tower: VisionTower | None = None, lm=None):
        super().__init__()
        from mmeval.models.mamba import MambaLM

        self.cfg = cfg
        self.vision_tower = vision_tower if vision_tower is not None else VisionTower(
            cfg.vision_config, cfg.vision_select_layer, cfg.vision_select_feature, device=device, dtype=dtype)
        self.lm = lm if lm is not None else MambaLM(cfg.mamba_config(), device=device, dtype=dtype, kernel=kernel)
        vss_kwargs = {"d_state": cfg.vss_d_state, "expand": cfg.vss_expand, "d_conv": cfg.vss_d_conv,
                      "kernel": self.lm.kernel}
        self.mm_projector = build_connector(cfg.mmc, self.vision_tower.hidden_size, self.lm.config.d_model,
                                            cfg.scan, vss_kwargs, device=device, dtype=dtype)
        self.freeze_vision_tower = True  # LLaVA: the tower runs without gradients
        self.preprocess = cfg.preprocess()

    @property
    def num_image_tokens(self) -> int:
        return self.vision_tower.num_patches

    @property
    def image_transform(self) -> ImagePreprocess:
        """PIL image -> the tower's pixel tensor (the name Cobra's model gives it too)."""
        return self.preprocess

    @property
    def device(self) -> torch.device:
        return self.lm.device

    # ---- images ------------------------------------------------------------------------------
    def encode_images(self, pixel_values: Tensor) -> Tensor:
        """[N, 3, S, S] -> [N, P, d_model] LM-space image tokens."""
        pixel_values = pixel_values.to(self.device)
        if self.freeze_vision_tower:
            with torch.no_grad():
                feats = self.vision_tower(pixel_values)
        else:
            feats = self.vision_tower(pixel_values)
        dtype = next(self.mm_projector.parameters()).dtype
        return self.mm_projector(feats.to(dtype))

    # ---- training entry points ------------------------------------------------------------------
    def prepare_inputs(self, input_ids: Tensor, lengths: Tensor | None, pixel_values: Tensor | None,
                       image_token_id: int = IMAGE_TOKEN_INDEX, labels: Tensor | None = None):
        """Splice image tokens at each ``image_token_id`` placeholder (LLaVA's
        prepare_inputs_labels_for_multimodal): images are consumed in order, one per placeholder.

        input_ids [B, L] right-padded (``lengths`` [B], None = all L); pixel_values [N, 3, S, S]
        with N = number of placeholders. Returns (inputs_embeds [B, L', D] right-padded with
        zeros, lengths [B], labels [B, L'] with -100 at image tokens and padding, or None)."""
        B, L = input_ids.shape
        dev = self.device
        input_ids = input_ids.to(dev)
        lengths = torch.full((B,), L, dtype=torch.long) if lengths is None else torch.as_tensor(lengths).long().cpu()
        n_img = int((input_ids == image_token_id).sum())
        feats = None
        if n_img:
            if pixel_values is None or pixel_values.shape[0] < n_img:
                have = 0 if pixel_values is None else pixel_values.shape[0]
                raise ValueError(f"{n_img} image placeholders but {have} images")
            feats = self.encode_images(pixel_values[:n_img])
        emb_dtype = self.lm.dtype
        seqs, labs = [], []
        k = 0
        for b in range(B):
            ids = input_ids[b, : int(lengths[b])]
            lab = labels[b, : int(lengths[b])].to(dev) if labels is not None else None
            pos = (ids == image_token_id).nonzero().flatten().tolist()
            parts, lparts, start = [], [], 0
            for p in pos + [ids.shape[0]]:
                if p > start:
                    parts.append(self.lm.embed(ids[start:p]))
                    if lab is not None:
                        lparts.append(lab[start:p])
                if p < ids.shape[0]:
                    f = feats[k].to(emb_dtype)
                    k += 1
                    parts.append(f)
                    if lab is not None:
                        lparts.append(torch.full((f.shape[0],), IGNORE_INDEX, dtype=torch.long, device=dev))
                start = p + 1
            D = self.lm.config.d_model
            seqs.append(torch.cat(parts, 0) if parts else torch.zeros(0, D, device=dev, dtype=emb_dtype))
            if lab is not None:
                labs.append(torch.cat(lparts, 0) if lparts else torch.zeros(0, dtype=torch.long, device=dev))
        new_len = torch.tensor([s.shape[0] for s in seqs], dtype=torch.long, device=dev)
        Lmax = max(1, int(new_len.max()))
        embeds = torch.zeros(B, Lmax, seqs[0].shape[-1], device=dev, dtype=emb_dtype)
        out_labels = torch.full((B, Lmax), IGNORE_INDEX, dtype=torch.long, device=dev) if labels is not None else None
        for b, s in enumerate(seqs):
            embeds[b, : s.shape[0]] = s
            if out_labels is not None:
                out_labels[b, : s.shape[0]] = labs[b]
        return embeds, new_len, out_labels

    def forward(self, input_ids: Tensor, lengths: Tensor | None = None, pixel_values: Tensor | None = None,
                image_token_id: int = IMAGE_TOKEN_INDEX, labels: Tensor | None = None) -> VLMambaOutput:
        """Logits over the spliced sequence; with labels, the mean next-token cross-entropy over
        positions whose label is not -100."""
        embeds, lens, labs = self.prepare_inputs(input_ids, lengths, pixel_values, image_token_id, labels)
        out = self.lm(inputs_embeds=embeds, lengths=lens, logits="all")
        logits = out.logits
        loss = None
        if labs is not None:
            V = self.lm.config.vocab_size
            shift_logits = logits[:, :-1, :V].float()
            shift_labels = labs[:, 1:]
            loss = F.cross_entropy(shift_logits.reshape(-1, V), shift_labels.reshape(-1), ignore_index=IGNORE_INDEX)
        return VLMambaOutput(logits=logits, loss=loss, labels=labs, lengths=lens)

    # ---- checkpoints ------------------------------------------------------------------------------
    def checkpoint_state_dict(self, include_vision_tower: bool) -> dict[str, Tensor]:
        sd: dict[str, Tensor] = {}
        tied = self.lm.config.tie_embeddings
        for k, v in self.lm.state_dict().items():
            if tied and k == "lm_head.weight":
                continue
            sd[k] = v
        for k, v in self.mm_projector.state_dict().items():
            sd["mm_projector." + k] = v
        if include_vision_tower:
            for k, v in self.vision_tower.published_state_dict().items():
                sd["vision_tower." + k] = v
        return sd

    def save_pretrained(self, directory, include_vision_tower: bool | None = None) -> Path:
        """config.json + model.safetensors (see the module docstring). The tower is included by
        default unless it was loaded from pretrained weights (then config.json names it)."""
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        if include_vision_tower is None:
            include_vision_tower = self.vision_tower.source is None
        cfg = dataclasses.replace(self.cfg)
        if self.vision_tower.source is not None:
            cfg.vision_tower = self.vision_tower.source
        (d / "config.json").write_text(json.dumps(cfg.llava_config(include_vision_tower), indent=2))
        sd = {k: v.detach().to("cpu").contiguous() for k, v in self.checkpoint_state_dict(include_vision_tower).items()}
        # one metadata entry: safetensors writes the map in hash order, so with two the bytes vary run to run
        save_file(sd, str(d / "model.safetensors"), metadata={"format": "pt"})
        return d

    @classmethod
    def from_pretrained(cls, path, device=None, dtype=None, kernel: str = "auto",
                        vision_tower: str | None = None, projector: str | None = None,
                        config: VLMambaConfig | None = None, allow_random_projector: bool = False,
                        allow_random_vision_tower: bool = False) -> VLMamba:
        """Load our layout, or a bare state-spaces Mamba directory + ``mm_projector.bin``.

        ``vision_tower``: folder/hub id of the pretrained tower (default: config's mm_vision_tower)
        when the checkpoint does not include it. ``config``: the VL-Mamba settings for a bare
        Mamba directory (default: the paper's, with the LM read from the directory)."""
        d = Path(path).expanduser()
        if not d.is_dir():
            raise CheckpointError(f"vl-mamba checkpoint: no directory at {d}")
        cfg_file = d / "config.json"
        if not cfg_file.is_file():
            raise CheckpointError(f"vl-mamba checkpoint: missing config.json in {d}")
        raw = json.loads(cfg_file.read_text())
        if "mm_projector_type" in raw:
            return cls._from_layout(d, raw, device, dtype, kernel, vision_tower, allow_random_vision_tower)
        if "d_model" in raw or raw.get("model_type") == "mamba":
            return cls._from_bare_mamba(d, raw, device, dtype, kernel, vision_tower, projector, config,
                                        allow_random_projector, allow_random_vision_tower)
        raise CheckpointError(f"vl-mamba checkpoint: {cfg_file} is neither a VL-Mamba config (mm_projector_type) "
                              "nor a Mamba LM config (d_model)")

    @staticmethod
    def _tower(cfg: VLMambaConfig, source: str | None, included: bool, device, dtype,
               allow_random: bool) -> VisionTower:
        if included or (source is None and allow_random):
            return VisionTower(cfg.vision_config, cfg.vision_select_layer, cfg.vision_select_feature,
                               device=device, dtype=dtype)
        if source is None:
            raise CheckpointError("vl-mamba checkpoint: the vision tower is not included and no mm_vision_tower "
                                  "is named; pass vision_tower=PATH (a CLIP/SigLIP folder)")
        tower = load_vision_tower(source, cfg.vision_select_layer, cfg.vision_select_feature, device=device,
                                  dtype=dtype, expect=cfg.encoder)
        if tower.config_dict["hidden_size"] != cfg.vision_config["hidden_size"]:
            raise CheckpointError(f"vision tower {source}: hidden size {tower.config_dict['hidden_size']} but the "
                                  f"connector expects {cfg.vision_config['hidden_size']}")
        return tower

    @classmethod
    def _from_layout(cls, d: Path, raw: dict, device, dtype, kernel, vision_tower, allow_random_vision_tower):
        from safetensors.torch import load_file

        vl = dict(raw.get("vl_mamba") or {})
        lm_keys = {k: v for k, v in raw.items() if not k.startswith("mm_") and k not in
                   ("vl_mamba", "image_aspect_ratio", "architectures")}
        inv_proj = {v: k for k, v in PROJECTOR_TYPES.items()}
        if raw["mm_projector_type"] not in inv_proj:
            raise CheckpointError(f"vl-mamba checkpoint {d}: unknown mm_projector_type {raw['mm_projector_type']!r}; "
                                  f"known: {', '.join(inv_proj)}")
        vl.update(mmc=inv_proj[raw["mm_projector_type"]], scan=raw.get("mm_vss_scan", vl.get("scan", "bsm")),
                  vision_select_layer=raw.get("mm_vision_select_layer", -2),
                  vision_select_feature=raw.get("mm_vision_select_feature", "patch"),
                  image_aspect_ratio=raw.get("image_aspect_ratio", "pad"),
                  vision_tower=raw.get("mm_vision_tower"), lm_config=lm_keys)
        if raw.get("mm_vision_config"):
            vl["vision_config"] = raw["mm_vision_config"]
        try:
            cfg = VLMambaConfig.from_json(vl)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"vl-mamba checkpoint {d}: bad config.json: {e}") from None
        wfile = d / "model.safetensors"
        if not wfile.is_file():
            raise CheckpointError(f"vl-mamba checkpoint: missing model.safetensors in {d}")
        from mmeval.models.mamba.checkpoint import empty_mamba_lm

        # memory-mapped and copied straight to the device; the LM is not randomly initialised first
        sd = load_file(str(wfile), device=str(device or "cpu"))
        included = bool(raw.get("mm_vision_tower_included")) or any(k.startswith("vision_tower.") for k in sd)
        tower = cls._tower(cfg, vision_tower or cfg.vision_tower, included, device, dtype,
                           allow_random_vision_tower)
        lm = empty_mamba_lm(cfg.mamba_config(), device, dtype, kernel)
        model = cls(cfg, device=device, dtype=dtype, kernel=kernel, vision_tower=tower, lm=lm)
        model._load_checkpoint_state(sd, included, where=str(wfile))
        if vision_tower:
            model.cfg.vision_tower = vision_tower
        return model.eval()

    def _load_checkpoint_state(self, sd: dict[str, Tensor], include_vision_tower: bool, where: str):
        from mmeval.models.mamba.checkpoint import load_state_into

        expected = set(self.checkpoint_state_dict(include_vision_tower))
        tied = self.lm.config.tie_embeddings
        got = set(sd)
        if tied:
            got.discard("lm_head.weight")
        missing = sorted(k for k in expected - got if not k.endswith("position_ids"))
        unexpected = sorted(k for k in got - expected if not k.endswith("position_ids"))
        if missing or unexpected:
            parts = ([f"missing keys: {_names(missing)}"] if missing else []) + \
                    ([f"unexpected keys: {_names(unexpected)}"] if unexpected else [])
            raise CheckpointError(f"vl-mamba checkpoint {where} does not match the model: " + "; ".join(parts))
        lm_sd = {k: v for k, v in sd.items() if not k.startswith(("mm_projector.", "vision_tower."))}
        load_state_into(self.lm, lm_sd, where=where)
        proj = {k[len("mm_projector."):]: v for k, v in sd.items() if k.startswith("mm_projector.")}
        _load_module(self.mm_projector, proj, where, "mm_projector.")
        if include_vision_tower:
            tower = {k[len("vision_tower."):]: v for k, v in sd.items() if k.startswith("vision_tower.")}
            self.vision_tower.load_published_state_dict(tower, where, strict_unused=True)
            self.vision_tower.source = None  # part of this checkpoint

    @classmethod
    def _from_bare_mamba(cls, d: Path, raw: dict, device, dtype, kernel, vision_tower, projector, config,
                         allow_random_projector, allow_random_vision_tower):
        from mmeval.models.mamba import load_mamba_lm

        lm = load_mamba_lm(d, device=device, dtype=dtype, kernel=kernel)
        if dtype is None:
            dtype = lm.dtype
        base = config or VLMambaConfig()
        cfg = dataclasses.replace(base, lm_config=lm.config.to_state_spaces_dict())
        tower = cls._tower(cfg, vision_tower or cfg.vision_tower, False, device, dtype, allow_random_vision_tower)
        model = cls(cfg, device=device, dtype=dtype, kernel=kernel, vision_tower=tower, lm=lm)
        pfile = Path(projector).expanduser() if projector else d / "mm_projector.bin"
        if pfile.is_file():
            try:
                psd = torch.load(str(pfile), map_location="cpu", weights_only=True)
            except Exception as e:
                raise CheckpointError(
                    f"vl-mamba: cannot read connector file {pfile}: {type(e).__name__}: {e}"
                ) from None
            stripped = {}
            for k, v in psd.items():
                for prefix in ("model.mm_projector.", "mm_projector."):
                    if k.startswith(prefix):
                        k = k[len(prefix):]
                        break
                stripped[k] = v
            _load_module(model.mm_projector, stripped, str(pfile), "")
        elif not allow_random_projector:
            raise CheckpointError(f"vl-mamba: {d} is a bare Mamba LM and no connector file was found "
                                  f"({pfile}); pass projector=PATH to an mm_projector.bin")
        if vision_tower:
            model.cfg.vision_tower = vision_tower
        return model.eval()


def _names(keys: list[str], n: int = 8) -> str:
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _load_module(module: nn.Module, sd: dict[str, Tensor], where: str, prefix: str):
    own = module.state_dict()
    missing = sorted(k for k in own if k not in sd)
    unexpected = sorted(k for k in sd if k not in own)
    if missing or unexpected:
        parts = ([f"missing keys: {_names([prefix + k for k in missing])}"] if missing else []) + \
                ([f"unexpected keys: {_names([prefix + k for k in unexpected])}"] if unexpected else [])
        raise CheckpointError(f"vl-mamba connector weights in {where} do not match the {type(module).__name__}: "
                              + "; ".join(parts))
    bad = [f"{prefix}{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if sd[k].shape != v.shape]
    if bad:
        raise CheckpointError(f"vl-mamba connector weights in {where} have wrong shapes (checkpoint vs model): "
                              + "; ".join(bad[:4]))
    module.load_state_dict(sd, strict=True)
