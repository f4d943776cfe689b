"""MambaState: the recurrent state of a Mamba-1 LM after some prefix, per layer a conv
state ``[B, d_inner, d_conv]`` (the last d_conv mixer inputs, oldest first, mamba_ssm's
cache layout, model dtype) and an SSM state ``[B, d_inner, d_state]`` (float32).

Batch-axis operations (index_select, repeat_interleave, expand, cat) let a prefix such as
"system prompt + image" be computed once and reused by many continuations. All of them
return new tensors (never views), so in-place decoding on the result cannot corrupt the
original state."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor


class MambaState:
    def __init__(self, conv_states: Sequence[Tensor], ssm_states: Sequence[Tensor]):
        if len(conv_states) != len(ssm_states):
            raise ValueError("conv_states and ssm_states must have one entry per layer")
        self.conv_states: list[Tensor] = list(conv_states)
        self.ssm_states: list[Tensor] = list(ssm_states)

    # ---------------------------------------------------------------- construction
    @classmethod
    def zeros(cls, n_layer: int, batch_size: int, d_inner: int, d_conv: int, d_state: int,
              device=None, dtype=None) -> MambaState:
        dtype = dtype or torch.get_default_dtype()
        conv = [torch.zeros(batch_size, d_inner, d_conv, device=device, dtype=dtype) for _ in range(n_layer)]
        ssm = [torch.zeros(batch_size, d_inner, d_state, device=device, dtype=torch.float32) for _ in range(n_layer)]
        return cls(conv, ssm)

    @staticmethod
    def cat(states: Iterable[MambaState]) -> MambaState:
        states = list(states)
        if not states:
            raise ValueError("MambaState.cat needs at least one state")
        n = len(states[0])
        if any(len(s) != n for s in states):
            raise ValueError("cannot concatenate states with different numbers of layers")
        return MambaState(
            [torch.cat([s.conv_states[i] for s in states], 0) for i in range(n)],
            [torch.cat([s.ssm_states[i] for s in states], 0) for i in range(n)],
        )

    @staticmethod
    def gather(states: Sequence[MambaState], out: MambaState | None = None) -> MambaState:
        """`cat(states)` where many entries are the same object (the questions on one image share
        its prefix state): the distinct states are concatenated once per layer and their rows
        picked with one index_select, instead of a cat over every entry (at batch 512 that is 128
        cats of 512 inputs each, tens of milliseconds of host time per batch). Written into the
        tensors of `out` when given (a CUDA graph's static input). The same values as `cat`."""
        states = list(states)
        distinct = list({id(s): s for s in states}.values())
        if len(distinct) == len(states):  # nothing shared: a plain concatenation
            if out is None:
                return MambaState.cat(states)
            for i in range(len(out)):
                torch.cat([s.conv_states[i] for s in states], 0, out=out.conv_states[i])
                torch.cat([s.ssm_states[i] for s in states], 0, out=out.ssm_states[i])
            return out
        first, offset = {}, 0
        for s in distinct:
            first[id(s)] = offset
            offset += s.batch_size
        rows = torch.tensor([r for s in states for r in range(first[id(s)], first[id(s)] + s.batch_size)])
        device = distinct[0].device
        rows = rows.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else rows.to(device)

        def pick(parts: list[Tensor], dst: Tensor | None) -> Tensor:
            src = torch.cat(parts, 0) if len(parts) > 1 else parts[0]
            return src.index_select(0, rows) if dst is None else torch.index_select(src, 0, rows, out=dst)

        n = len(distinct[0])
        conv = [pick([s.conv_states[i] for s in distinct], out.conv_states[i] if out is not None else None)
                for i in range(n)]
        ssm = [pick([s.ssm_states[i] for s in distinct], out.ssm_states[i] if out is not None else None)
               for i in range(n)]
        return out if out is not None else MambaState(conv, ssm)

    # ---------------------------------------------------------------- properties
    def __len__(self) -> int:
        return len(self.conv_states)

    @property
    def n_layer(self) -> int:
        return len(self.conv_states)

    @property
    def batch_size(self) -> int:
        return self.conv_states[0].shape[0] if self.conv_states else 0

    @property
    def device(self) -> torch.device:
        return self.conv_states[0].device

    def layer(self, i: int) -> tuple[Tensor, Tensor]:
        return self.conv_states[i], self.ssm_states[i]

    def __repr__(self) -> str:
        if not self.conv_states:
            return "MambaState(n_layer=0)"
        c, s = self.conv_states[0], self.ssm_states[0]
        return (f"MambaState(n_layer={self.n_layer}, batch_size={self.batch_size}, conv={tuple(c.shape)} "
                f"{c.dtype}, ssm={tuple(s.shape)} {s.dtype}, device={c.device})")

    # ---------------------------------------------------------------- batch operations
    def _map(self, fn) -> MambaState:
        return MambaState([fn(t) for t in self.conv_states], [fn(t) for t in self.ssm_states])

    def clone(self) -> MambaState:
        return self._map(lambda t: t.clone())

    def detach(self) -> MambaState:
        return self._map(lambda t: t.detach())

    def index_select(self, idx) -> MambaState:
        if not torch.is_tensor(idx):
            idx = torch.as_tensor(idx, dtype=torch.long)
        idx = idx.to(device=self.device, dtype=torch.long)
        return self._map(lambda t: t.index_select(0, idx))

    def __getitem__(self, idx) -> MambaState:
        """Batch indexing: an int keeps the batch axis (size 1); slices, lists, tensors select."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1 if idx != -1 else None)
        if isinstance(idx, slice):
            return self._map(lambda t: t[idx].clone())
        return self.index_select(idx)

    def repeat_interleave(self, n: int) -> MambaState:
        """[s0, s1] -> [s0]*n + [s1]*n (each sequence repeated n times, consecutive)."""
        return self._map(lambda t: t.repeat_interleave(n, dim=0))

    def expand(self, n: int) -> MambaState:
        """A batch-1 state broadcast to batch n (materialised copy, safe to update in place)."""
        if self.batch_size != 1:
            raise ValueError(f"expand needs a batch-1 state, this one has batch_size={self.batch_size}")
        return self._map(lambda t: t.expand(n, *t.shape[1:]).contiguous())

    def to(self, device=None, dtype=None) -> MambaState:
        """Move; ``dtype`` applies to the conv states only (SSM states stay float32)."""
        return MambaState([t.to(device=device, dtype=dtype) for t in self.conv_states],
                          [t.to(device=device) for t in self.ssm_states])

    def copy_(self, other: MambaState) -> MambaState:
        """In-place copy of ``other`` (same shapes) into this state's tensors."""
        if len(other) != len(self) or other.batch_size != self.batch_size:
            raise ValueError("copy_ needs a state with the same number of layers and batch size")
        for a, b in zip(self.conv_states + self.ssm_states, other.conv_states + other.ssm_states, strict=True):
            a.copy_(b)
        return self

    def equal(self, other: MambaState) -> bool:
        return len(self) == len(other) and all(
            torch.equal(a, b) for a, b in zip(self.conv_states + self.ssm_states,
                                              other.conv_states + other.ssm_states, strict=True))

    def max_abs_diff(self, other: MambaState) -> float:
        return max(float((a.float() - b.float()).abs().max()) for a, b in
                   zip(self.conv_states + self.ssm_states, other.conv_states + other.ssm_states, strict=True))
