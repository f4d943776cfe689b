"""Batched greedy decoding from a MambaState (per-sequence EOS and stop callback), with an
optional CUDA-graph single-token step for a fixed batch size."""
from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from .state import MambaState

StopFn = Callable[[int, list[int]], bool]


class CudaGraphStep:
    """model.step captured in a CUDA graph for one batch size; static ids/state/logits buffers.

    ``load_state(state)`` copies a state into the static buffers; ``__call__(ids)`` runs one
    step (the static state is updated in place) and returns the static logits tensor,
    which the next call overwrites."""

    def __init__(self, model, batch_size: int, n_warmup: int = 2):
        if model.device.type != "cuda":
            raise ValueError("CUDA graphs need the model on a CUDA device")
        self.batch_size = batch_size
        self.ids = torch.zeros(batch_size, dtype=torch.long, device=model.device)
        self.state = model.empty_state(batch_size)
        with torch.no_grad():
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(n_warmup):
                    model.step(self.ids, state=self.state, inplace=True)
                s.synchronize()
            torch.cuda.current_stream().wait_stream(s)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.logits, _ = model.step(self.ids, state=self.state, inplace=True)

    def load_state(self, state: MambaState):
        self.state.copy_(state)

    def __call__(self, ids: Tensor) -> Tensor:
        self.ids.copy_(ids.view(-1))
        self.graph.replay()
        return self.logits


def get_cuda_graph_step(model, batch_size: int) -> CudaGraphStep:
    """Captured step for (batch_size, dtype, kernel), cached on the model."""
    cache = model.__dict__.setdefault("_mamba_cuda_graphs", {})
    key = (batch_size, model.dtype, model.kernel, model.device)
    if key not in cache:
        cache[key] = CudaGraphStep(model, batch_size)
    return cache[key]


def _eos_set(eos_token_id) -> set:
    if eos_token_id is None:
        return set()
    if isinstance(eos_token_id, int):
        return {eos_token_id}
    return {int(e) for e in eos_token_id}


@torch.no_grad()
def greedy_generate(
    model,
    first_logits: Tensor,
    state: MambaState,
    max_new_tokens: int,
    eos_token_id: int | Iterable[int] | None = None,
    stop_fn: StopFn | None = None,
    use_cuda_graph: bool = False,
    vocab_size: int | None = None,
) -> list[list[int]]:
    """Greedy continuation of B sequences.

    ``first_logits`` [B, V]: logits at each sequence's last prompt position (e.g.
    ``model(..., logits="last", return_state=True)``); ``state``: the matching MambaState
    (not modified). The argmax is over the first ``vocab_size`` columns (default
    ``model.config.vocab_size``: padding rows of the embedding are never produced).
    A sequence stops at an EOS token (not included in its output), when
    ``stop_fn(seq_index, tokens_so_far)`` returns True (the token that triggered it is kept)
    or after ``max_new_tokens`` tokens. Stopped sequences are not extended (eager mode
    drops them from the batch; CUDA-graph mode keeps the fixed batch and ignores them).
    ``use_cuda_graph``: decode with a captured single-token step (CUDA only; falls back to
    eager with a warning elsewhere)."""
    B = first_logits.shape[0]
    if state.batch_size != B:
        raise ValueError(f"state batch size {state.batch_size} != first_logits batch size {B}")
    results: list[list[int]] = [[] for _ in range(B)]
    if max_new_tokens <= 0 or B == 0:
        return results
    eos = _eos_set(eos_token_id)
    limit = vocab_size or model.config.vocab_size
    if use_cuda_graph and model.device.type != "cuda":
        warnings.warn("use_cuda_graph ignored: the model is not on CUDA", stacklevel=2)
        use_cuda_graph = False

    def pick(logits: Tensor) -> Tensor:
        return logits[:, :limit].argmax(dim=-1)

    tok = pick(first_logits.to(model.device))
    if use_cuda_graph:
        runner = get_cuda_graph_step(model, B)
        runner.load_state(state)
    else:
        runner = None
        state = state.clone()
    active = list(range(B))  # original sequence index of each row still decoded (eager)
    done = [False] * B
    for t in range(max_new_tokens):
        toks = tok.tolist()
        keep = []
        for row, seq in enumerate(active):
            if done[seq]:
                continue
            tk = toks[row]
            if tk in eos:
                done[seq] = True
                continue
            results[seq].append(tk)
            if stop_fn is not None and stop_fn(seq, results[seq]):
                done[seq] = True
                continue
            keep.append(row)
        if not keep or t == max_new_tokens - 1:
            break
        if runner is not None:
            tok = pick(runner(tok))
        else:
            if len(keep) < len(active):
                idx = torch.tensor(keep, device=tok.device)
                state = state.index_select(idx)
                tok = tok.index_select(0, idx)
                active = [active[r] for r in keep]
            logits, state = model.step(tok, state=state, inplace=True)
            tok = pick(logits)
    return results
