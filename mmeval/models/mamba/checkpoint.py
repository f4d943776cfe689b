"""Checkpoint IO for Mamba-1 LMs: resolve a local directory or hub id, read the mamba_ssm
layout (config.json + pytorch_model.bin) or the transformers layout (config.json +
model.safetensors / sharded safetensors or .bin with an index), map names, pad the
vocabulary, check keys strictly, and save in the mamba_ssm layout. Failures raise
`mmeval.errors.CheckpointError` with a one-line message that names the cause."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from torch import Tensor

from mmeval.errors import CheckpointError  # the one users see (also exported by mmeval.models.mamba)

from .config import MambaConfig
from .lm import MambaLM

PathLike = str | os.PathLike
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DOWNLOAD_PATTERNS = ["config.json", "*.json", "*.safetensors", "pytorch_model*.bin", "*.model", "*.txt"]
# transformers -> mamba_ssm parameter names (everything else is identical)
_HF_RENAMES = {"backbone.embeddings.weight": "backbone.embedding.weight"}


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true", "yes", "on")


def hub_offline() -> bool:
    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE"))


def default_local_dir(repo_id: str) -> Path:
    """Where a hub checkpoint is looked for locally (and where the error tells users to put it):
    ``$MMEVAL_CHECKPOINTS/<org>--<name>`` (default ``~/.cache/mmeval/checkpoints``)."""
    root = os.environ.get("MMEVAL_CHECKPOINTS") or os.path.join("~", ".cache", "mmeval", "checkpoints")
    return Path(os.path.expanduser(root)) / repo_id.replace("/", "--")


def _one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}".rstrip(": ")


def resolve_checkpoint_dir(name_or_path: PathLike) -> Path:
    """A local directory (or a file inside one), else a hub id ``org/name``: first the local
    default directory, then huggingface_hub (its cache only when offline)."""
    p = Path(os.path.expanduser(str(name_or_path)))
    if p.is_dir():
        return p
    if p.is_file():
        return p.parent
    name = str(name_or_path)
    if not _HUB_ID.match(name):
        raise CheckpointError(f"checkpoint directory not found: {p}")
    local = default_local_dir(name)
    if (local / "config.json").is_file():
        return local
    hint = (f"put config.json, pytorch_model.bin (or model.safetensors) and tokenizer.json in {local} "
            f"or another directory and pass it (e.g. --model-args checkpoint={local})")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:  # pragma: no cover - huggingface_hub is a dependency
        raise CheckpointError(
            f"cannot download '{name}' (huggingface_hub unavailable: {_one_line(e)}); {hint}"
        ) from None
    offline = hub_offline()
    try:
        return Path(snapshot_download(name, allow_patterns=_DOWNLOAD_PATTERNS, local_files_only=offline))
    except Exception as e:  # noqa: BLE001 - any hub failure becomes one clear error
        why = "offline (HF_HUB_OFFLINE set) and not in the local hub cache" if offline else _one_line(e)
        raise CheckpointError(
            f"cannot get Mamba checkpoint '{name}' from the Hugging Face hub: {why}; {hint}"
        ) from None


# ---------------------------------------------------------------------------- reading
def _load_file(path: Path, device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """The tensors of one weights file: safetensors memory-mapped and copied straight to `device`
    (no whole-file copy in host memory), torch files memory-mapped on the host."""
    if not path.is_file():
        raise CheckpointError(f"missing weights file {path.name} in {path.parent}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            return load_file(str(path), device=str(device))
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) files cannot be memory-mapped
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - unreadable file: one clear error
        raise CheckpointError(f"cannot read {path}: {_one_line(e)}") from None


def _weight_files(d: Path) -> list[Path]:
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = d / index_name
        if index.is_file():
            with open(index, encoding="utf-8") as f:
                shards = sorted(set(json.load(f)["weight_map"].values()))
            for s in shards:
                if not (d / s).is_file():
                    raise CheckpointError(f"missing weights shard {s} in {d} (listed in {index_name})")
            return [d / s for s in shards]
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (d / single).is_file():
            return [d / single]
    raise CheckpointError(f"missing weights in {d}: expected pytorch_model.bin or model.safetensors "
                          "(or a sharded *.index.json)")


def read_checkpoint(d: PathLike, device: str | torch.device = "cpu"):
    """-> (MambaConfig, raw state dict with mamba_ssm names) from a checkpoint directory; safetensors
    tensors are read onto `device`."""
    d = Path(d)
    if not d.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {d}")
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"missing config.json in {d}")
    try:
        cfg = MambaConfig.from_json_file(cfg_path)
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"bad config {cfg_path}: {_one_line(e)}") from None
    sd: dict[str, Tensor] = {}
    for f in _weight_files(d):
        for k, v in _load_file(f, device).items():
            sd[_HF_RENAMES.get(k, k)] = v
    return cfg, sd


def _names(keys: list[str], n: int = 8) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _pad_rows(t: Tensor, rows: int, key: str, where: str) -> Tensor:
    if t.shape[0] == rows:
        return t
    if t.shape[0] > rows:
        raise CheckpointError(f"{key} in {where} has {t.shape[0]} rows, more than the padded vocabulary size {rows}")
    return torch.cat([t, t.new_zeros(rows - t.shape[0], *t.shape[1:])], 0)


def load_state_into(model: MambaLM, sd: dict[str, Tensor], where: str = "checkpoint") -> MambaLM:
    """Strictly load a mamba_ssm-named state dict (pads vocabulary rows, checks names/shapes)."""
    sd = dict(sd)
    cfg = model.config
    rows = cfg.padded_vocab_size
    if cfg.tie_embeddings:
        sd.pop("lm_head.weight", None)  # tied: the embedding is the head
    for k in ("backbone.embedding.weight", "lm_head.weight"):
        if k in sd:
            sd[k] = _pad_rows(sd[k], rows, k, where)
    expected = {k: v for k, v in model.state_dict().items() if not (cfg.tie_embeddings and k == "lm_head.weight")}
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing:
        raise CheckpointError(f"{where} is missing keys: {_names(missing)}")
    if unexpected:
        raise CheckpointError(f"{where} has unexpected keys: {_names(unexpected)}")
    bad = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items() if sd[k].shape != v.shape]
    if bad:
        raise CheckpointError(f"{where} has wrong shapes (checkpoint vs model): {'; '.join(bad[:4])}")
    model.load_state_dict(sd, strict=False)
    model.tie_weights()
    return model


def load_mamba_lm(
    name_or_path: PathLike,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    kernel: str = "auto",
) -> MambaLM:
    """Load a Mamba-1 LM from a checkpoint directory (mamba_ssm or transformers layout) or a
    hub id. ``dtype`` None keeps the checkpoint's embedding dtype; A_log and D stay float32."""
    d = resolve_checkpoint_dir(name_or_path)
    device = torch.device(device) if device is not None else torch.device("cpu")
    cfg, sd = read_checkpoint(d, device)
    emb = sd.get("backbone.embedding.weight")
    if dtype is None:
        dtype = emb.dtype if emb is not None and emb.is_floating_point() else torch.float32
    model = empty_mamba_lm(cfg, device, dtype, kernel)
    load_state_into(model, sd, where=f"checkpoint {d}")
    return model.eval()


def empty_mamba_lm(cfg: MambaConfig, device, dtype, kernel: str = "auto") -> MambaLM:
    """A MambaLM with uninitialised weights on `device` (built on the meta device: no random init,
    which costs the CPU minutes at the 2.8B size), for weights that a checkpoint then fills."""
    with torch.device("meta"):
        model = MambaLM(cfg, dtype=dtype, kernel=kernel)
    model = model.to_empty(device=torch.device(device) if device is not None else torch.device("cpu"))
    model.tie_weights()
    return model


def save_mamba_lm(model: MambaLM, directory: PathLike) -> Path:
    """Write config.json + pytorch_model.bin in the mamba_ssm (state-spaces) layout."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "config.json", "w", encoding="utf-8") as f:
        json.dump(model.config.to_state_spaces_dict(), f, indent=2)
    sd = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        sd["lm_head.weight"] = sd["backbone.embedding.weight"]  # keep the two keys sharing storage
    torch.save(sd, d / "pytorch_model.bin")
    return d
