"""MambaLM: the Mamba-1 language model (embedding, residual Mamba blocks, final norm, tied
LM head) with mamba_ssm ``MambaLMHeadModel`` parameter names, exact right-padded batched
prefill from token ids or embeddings, prefix-state reuse and single-token decoding."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn

from .config import MambaConfig
from .mixer import Block, RMSNorm, make_norm
from .ops import check_kernel_mode, fused_add_norm
from .state import MambaState

LOGITS_MODES = ("all", "last", "none")


@dataclass
class MambaOutput:
    """``logits``: [B, L, V] ('all'), [B, V] at each sequence's last real position ('last') or
    None ('none'); ``state``: MambaState after each sequence's last real token (if asked);
    ``hidden_states``: final-normed hidden states [B, L, D]."""

    logits: Tensor | None = None
    state: MambaState | None = None
    hidden_states: Tensor | None = None


class MambaBackbone(nn.Module):
    def __init__(self, cfg: MambaConfig, device=None, dtype=None):
        super().__init__()
        self.embedding = nn.Embedding(cfg.padded_vocab_size, cfg.d_model, device=device, dtype=dtype)
        self.layers = nn.ModuleList([Block(cfg, i, device=device, dtype=dtype) for i in range(cfg.n_layer)])
        self.norm_f = make_norm(cfg, device=device, dtype=dtype)


def _init_weights(module: nn.Module, n_layer: int, initializer_range: float = 0.02):
    """mamba_ssm's _init_weights (rescale_prenorm_residual=True, one residual per layer)."""
    if isinstance(module, nn.Linear):
        if module.bias is not None and not getattr(module.bias, "_no_reinit", False):
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=initializer_range)
    if hasattr(module, "out_proj") and isinstance(module.out_proj, nn.Linear):
        p = module.out_proj.weight
        nn.init.kaiming_uniform_(p, a=math.sqrt(5))
        with torch.no_grad():
            p /= math.sqrt(n_layer)


def _as_lengths(lengths, batch: int, seqlen: int, device) -> tuple[Tensor | None, tuple[int, int] | None]:
    """(lengths on the device, (shortest, longest) known on the host, or None under CUDA-graph
    capture). Lists and CPU tensors are checked on the host, so the hot loop never waits on the
    GPU; a CUDA tensor is checked with one sync."""
    if lengths is None:
        return None, (seqlen, seqlen)
    host = torch.as_tensor(lengths, dtype=torch.long).view(-1) if not torch.is_tensor(lengths) \
        else lengths.view(-1)
    if host.numel() != batch:
        raise ValueError(f"lengths has {host.numel()} entries for a batch of {batch}")
    if host.is_cuda and torch.cuda.is_current_stream_capturing():
        return host, None  # CUDA-graph capture: the caller checks each replay's lengths on the host
    lo, hi = (int(v) for v in torch.aminmax(host))
    if lo < 0 or hi > seqlen:
        raise ValueError(f"lengths must lie in [0, {seqlen}], got {host.tolist()}")
    if torch.device(device).type == "cuda" and host.device.type == "cpu":
        host = host.pin_memory()  # a pageable copy would wait for the GPU's queue to drain
    return host.to(device=device, non_blocking=True), (lo, hi)


def right_pad_ids(seqs: Sequence[Sequence[int]], length: int | None = None) -> tuple[Tensor, Tensor]:
    """Token id lists -> (ids [B, length] right-padded with 0, lengths [B]), on the host, built in
    one tensor creation (per-row writes cost ~10 us each in the hot loop)."""
    length = max(len(s) for s in seqs) if length is None else length
    ids = torch.tensor([list(s) + [0] * (length - len(s)) for s in seqs], dtype=torch.long)
    return ids, torch.tensor([len(s) for s in seqs], dtype=torch.long)


class MambaLM(nn.Module):
    def __init__(self, config: MambaConfig, device=None, dtype=None, kernel: str = "auto"):
        super().__init__()
        self.config = config
        self.kernel = check_kernel_mode(kernel)
        self.backbone = MambaBackbone(config, device=device, dtype=dtype)
        self.lm_head = nn.Linear(config.d_model, config.padded_vocab_size, bias=False, device=device, dtype=dtype)
        self.apply(partial(_init_weights, n_layer=config.n_layer, initializer_range=config.initializer_range))
        self.tie_weights()

    def tie_weights(self):
        if self.config.tie_embeddings:
            self.lm_head.weight = self.backbone.embedding.weight

    # ----------------------------------------------------------------------- properties
    @property
    def dtype(self) -> torch.dtype:
        return self.backbone.embedding.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.backbone.embedding.weight.device

    def final_norm(self, hidden: Tensor, residual: Tensor | None) -> Tensor:
        norm = self.backbone.norm_f
        return fused_add_norm(hidden, residual, norm.weight, getattr(norm, "bias", None), norm.eps,
                              isinstance(norm, RMSNorm), self.config.residual_in_fp32, prenorm=False,
                              kernel=self.kernel)

    def embed(self, input_ids: Tensor) -> Tensor:
        return self.backbone.embedding(input_ids)

    def empty_state(self, batch_size: int, device=None, dtype=None) -> MambaState:
        c = self.config
        return MambaState.zeros(c.n_layer, batch_size, c.d_inner, c.d_conv, c.d_state,
                                device=device or self.device, dtype=dtype or self.dtype)

    def _inputs(self, input_ids, inputs_embeds) -> Tensor:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if input_ids is not None:
            return self.embed(input_ids.to(self.device))
        return inputs_embeds.to(device=self.device, dtype=self.dtype)

    def _check_state(self, state: MambaState, batch: int) -> MambaState:
        if len(state) != self.config.n_layer:
            raise ValueError(f"state has {len(state)} layers, the model has {self.config.n_layer}")
        if state.batch_size == batch:
            return state
        if state.batch_size == 1:
            return state.expand(batch)
        raise ValueError(f"state batch size {state.batch_size} does not match input batch size {batch} "
                         "(use state.repeat_interleave / index_select)")

    # ----------------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        lengths: Tensor | Sequence[int] | None = None,
        state: MambaState | None = None,
        return_state: bool = False,
        logits: str = "all",
    ) -> MambaOutput:
        """Prefill. Inputs are RIGHT-padded [B, L] ids or [B, L, D] embeddings with ``lengths``
        [B] real lengths (None: all L). ``state`` is an initial state (prefix reuse; it is not
        modified). Each sequence's result is exactly what it would give alone."""
        if logits not in LOGITS_MODES:
            raise ValueError(f"logits must be one of {LOGITS_MODES}, got {logits!r}")
        hidden = self._inputs(input_ids, inputs_embeds)
        Bsz, L = hidden.shape[:2]
        if hidden.is_cuda and (Bsz * L) % 8:
            # The mixer's activations are [d, b*l] matrices: with b*l not a multiple of 8 their
            # rows are not 16-byte aligned and cuBLAS falls back to much slower (sm75/sm80)
            # GEMM kernels. Right-pad to a multiple of 8 tokens; padding is exact (see lengths).
            if lengths is None:
                lengths = [L] * Bsz
            hidden = torch.nn.functional.pad(hidden, (0, 0, 0, (-L) % 8))
        lengths, length_range = _as_lengths(lengths, Bsz, hidden.shape[1], hidden.device)
        if state is not None:
            state = self._check_state(state, Bsz)
        conv_out, ssm_out = [], []
        residual = None
        for i, layer in enumerate(self.backbone.layers):
            cs, ss = (state.conv_states[i], state.ssm_states[i]) if state is not None else (None, None)
            hidden, residual, st = layer(hidden, residual, lengths=lengths, length_range=length_range, conv_state=cs,
                                         ssm_state=ss, return_state=return_state, kernel=self.kernel)
            if return_state:
                conv_out.append(st[0])
                ssm_out.append(st[1])
        hidden = self.final_norm(hidden, residual)[:, :L]
        out_logits = None
        if logits == "all":
            out_logits = self.lm_head(hidden)
        elif logits == "last":
            if lengths is None:
                last = hidden[:, -1]
            else:
                if length_range is not None and length_range[0] < 1:
                    raise ValueError("logits='last' needs every length >= 1")
                last = hidden[torch.arange(Bsz, device=hidden.device), lengths - 1]
            out_logits = self.lm_head(last)
        new_state = MambaState(conv_out, ssm_out) if return_state else None
        return MambaOutput(logits=out_logits, state=new_state, hidden_states=hidden)

    def step(
        self,
        input_ids: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        state: MambaState | None = None,
        inplace: bool = False,
    ) -> tuple[Tensor, MambaState]:
        """One decoding step: ids [B] or embeddings [B, D] -> (logits [B, V], new state).
        With ``inplace=True`` the given state's tensors are updated and returned (no copy;
        what CUDA-graph decoding needs), otherwise the given state is left untouched."""
        if state is None:
            raise ValueError("step needs a state (model.empty_state(batch) to start from scratch)")
        if input_ids is not None:
            input_ids = input_ids.view(-1)
        hidden = self._inputs(input_ids, inputs_embeds)
        if hidden.dim() != 2:
            raise ValueError(
                f"step takes one token per sequence: ids [B] or embeddings [B, D], got {tuple(hidden.shape)}"
            )
        state = self._check_state(state, hidden.shape[0])
        if not inplace:
            state = state.clone()
        residual = None
        for i, layer in enumerate(self.backbone.layers):
            hidden, residual = layer.step(hidden, residual, state.conv_states[i], state.ssm_states[i], self.kernel)
        return self.lm_head(self.final_norm(hidden, residual)), state
