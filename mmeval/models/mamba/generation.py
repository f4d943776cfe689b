"""Batched greedy decoding from a MambaState (per-sequence EOS and stop callback), with an
optional CUDA-graph single-token step for a fixed batch size."""
from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from .lm import right_pad_ids
from .state import MambaState

StopFn = Callable[[int, list[int]], bool]


class CudaGraphStep:
    """model.step captured in a CUDA graph for one batch size; static ids/state/logits buffers.

    ``load_state(state)`` copies a state into the static buffers; ``__call__(ids)`` runs one
    step (the static state is updated in place) and returns the static logits tensor,
    which the next call overwrites.

    A second graph (``start`` / ``advance``) also picks the greedy token on the GPU, feeds it
    back as the next input and writes it into a [B, CHUNK] history, so decoding k tokens is k
    replays with no host round trip in between; the host reads the history once per chunk."""

    CHUNK = 64  # tokens decoded between two reads of the history

    def __init__(self, model, batch_size: int, n_warmup: int = 2, vocab_size: int | None = None):
        if model.device.type != "cuda":
            raise ValueError("CUDA graphs need the model on a CUDA device")
        self.batch_size = batch_size
        self.vocab_size = vocab_size or model.config.vocab_size
        self.ids = torch.zeros(batch_size, dtype=torch.long, device=model.device)
        self.state = model.empty_state(batch_size)
        self.history = torch.zeros(batch_size, self.CHUNK, dtype=torch.long, device=model.device)
        self.pos = torch.zeros(1, dtype=torch.long, device=model.device)

        def greedy_step():
            logits, _ = model.step(self.ids, state=self.state, inplace=True)
            nxt = logits[:, : self.vocab_size].argmax(dim=-1)
            self.history.index_copy_(1, self.pos, nxt.unsqueeze(1))
            self.ids.copy_(nxt)
            self.pos.add_(1)
            return logits

        with torch.no_grad():
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(n_warmup):
                    model.step(self.ids, state=self.state, inplace=True)
                    self.pos.zero_()
                    greedy_step()
                s.synchronize()
            torch.cuda.current_stream().wait_stream(s)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.logits, _ = model.step(self.ids, state=self.state, inplace=True)
            self.greedy_graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.greedy_graph):
                greedy_step()

    def load_state(self, state: MambaState):
        self.state.copy_(state)

    def __call__(self, ids: Tensor) -> Tensor:
        self.ids.copy_(ids.view(-1))
        self.graph.replay()
        return self.logits

    def start(self, ids: Tensor) -> None:
        """The next greedy step continues from these tokens."""
        self.ids.copy_(ids.view(-1))

    def advance(self, k: int) -> list[list[int]]:
        """k greedy steps on the GPU; returns the k new tokens of each row (one host sync)."""
        if not 1 <= k <= self.CHUNK:
            raise ValueError(f"advance takes 1..{self.CHUNK} steps, got {k}")
        self.pos.zero_()
        for _ in range(k):
            self.greedy_graph.replay()
        return self.history[:, :k].tolist()


class CudaGraphPrefill:
    """``model(input_ids, lengths, state, return_state=True, logits="last")`` captured in a CUDA
    graph for one (batch, padded length): the prefill of short question suffixes from cached
    states. At the 2.8B size launching the 64 layers' ~1,500 kernels costs the CPU ~50 ms, while
    the GPU needs ~15 ms for 64 suffixes of ~25 tokens; replaying a graph costs the CPU nothing.

    ``__call__(ids, states)``: ids, B lists of 1..``length`` token ids; ``states``, B batch-1
    MambaStates (copied into the static input state). Returns the static (logits [B, V], state)
    of the graph, valid until the next call. Right padding is exact (see MambaLM.forward), so
    any length up to ``length`` is served."""

    def __init__(self, model, batch_size: int, length: int, n_warmup: int = 2):
        if model.device.type != "cuda":
            raise ValueError("CUDA graphs need the model on a CUDA device")
        self.batch_size, self.length = batch_size, length
        dev = model.device
        self.ids = torch.zeros(batch_size, length, dtype=torch.long, device=dev)
        self.lengths = torch.full((batch_size,), length, dtype=torch.long, device=dev)
        self.state = model.empty_state(batch_size)
        self._ids_host = torch.zeros(batch_size, length, dtype=torch.long).pin_memory()
        self._len_host = torch.zeros(batch_size, dtype=torch.long).pin_memory()

        def run():
            return model(input_ids=self.ids, lengths=self.lengths, state=self.state, return_state=True, logits="last")

        with torch.no_grad():
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(n_warmup):
                    run()
                s.synchronize()
            torch.cuda.current_stream().wait_stream(s)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                out = run()
        self.logits, self.out_state = out.logits, out.state

    def __call__(self, ids: list[list[int]], states: list[MambaState]) -> tuple[Tensor, MambaState]:
        if len(ids) != self.batch_size or len(states) != self.batch_size:
            raise ValueError(f"this graph serves batches of {self.batch_size}, got {len(ids)}")
        if not all(0 < len(x) <= self.length for x in ids):
            raise ValueError(f"suffix lengths must lie in [1, {self.length}]")
        padded, lengths = right_pad_ids(ids, self.length)
        self._ids_host.copy_(padded)
        self._len_host.copy_(lengths)
        self.ids.copy_(self._ids_host, non_blocking=True)
        self.lengths.copy_(self._len_host, non_blocking=True)
        MambaState.gather(states, out=self.state)  # the inputs' states straight into the static buffers
        self.graph.replay()
        return self.logits, self.out_state


def get_cuda_graph_prefill(model, batch_size: int, length: int, multiple: int = 8,
                           keep: int = 4) -> CudaGraphPrefill:
    """Captured suffix prefill for (batch_size, length rounded up to `multiple`), cached on the
    model. At most `keep` graphs are kept (least recently used goes): each holds its input and
    output states and activations, ~3 GB at batch 64 and the 2.8B size."""
    length = -(-length // multiple) * multiple
    cache = model.__dict__.setdefault("_mamba_cuda_graph_prefills", OrderedDict())
    key = (batch_size, length, model.dtype, model.kernel, model.device)
    if key not in cache:
        while len(cache) >= keep:
            cache.popitem(last=False)
        cache[key] = CudaGraphPrefill(model, batch_size, length)
    cache.move_to_end(key)
    return cache[key]


def get_cuda_graph_step(model, batch_size: int, vocab_size: int | None = None) -> CudaGraphStep:
    """Captured step for (batch_size, dtype, kernel, vocab limit), cached on the model."""
    cache = model.__dict__.setdefault("_mamba_cuda_graphs", {})
    key = (batch_size, model.dtype, model.kernel, model.device, vocab_size or model.config.vocab_size)
    if key not in cache:
        cache[key] = CudaGraphStep(model, batch_size, vocab_size=vocab_size)
    return cache[key]


def release_cuda_graphs(model) -> None:
    """Forget the model's captured prefill and decoding graphs (their memory pools go with them)."""
    model.__dict__.pop("_mamba_cuda_graph_prefills", None)
    model.__dict__.pop("_mamba_cuda_graphs", None)


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
        return _greedy_cuda_graph(model, tok, state, max_new_tokens, eos, stop_fn, limit, results)
    state = state.clone()
    active = list(range(B))  # original sequence index of each row still decoded
    done = [False] * B
    for t in range(max_new_tokens):
        toks = tok.tolist()
        keep = []
        for row, seq in enumerate(active):
            if _accept(seq, toks[row], results, done, eos, stop_fn):
                keep.append(row)
        if not keep or t == max_new_tokens - 1:
            break
        if len(keep) < len(active):
            idx = torch.tensor(keep, device=tok.device)
            state = state.index_select(idx)
            tok = tok.index_select(0, idx)
            active = [active[r] for r in keep]
        logits, state = model.step(tok, state=state, inplace=True)
        tok = pick(logits)
    return results


def _accept(seq: int, tk: int, results: list[list[int]], done: list[bool], eos: set, stop_fn: StopFn | None) -> bool:
    """Take token tk for sequence seq; False once the sequence has stopped."""
    if done[seq]:
        return False
    if tk in eos:
        done[seq] = True
        return False
    results[seq].append(tk)
    if stop_fn is not None and stop_fn(seq, results[seq]):
        done[seq] = True
        return False
    return True


def _greedy_cuda_graph(model, tok: Tensor, state: MambaState, max_new_tokens: int, eos: set,
                       stop_fn: StopFn | None, limit: int, results: list[list[int]]) -> list[list[int]]:
    """The fixed-batch graph loop: tokens are picked on the GPU, the host checks EOS and stops
    once per chunk of steps (chunks of 1, 2, 4, ... up to CudaGraphStep.CHUNK, so a short answer
    wastes few steps and a long one syncs rarely). Stopped rows keep running, ignored."""
    B = tok.shape[0]
    runner = get_cuda_graph_step(model, B, vocab_size=limit)
    runner.load_state(state)
    done = [False] * B
    live = [_accept(seq, tk, results, done, eos, stop_fn) for seq, tk in enumerate(tok.tolist())]
    remaining, chunk = max_new_tokens - 1, 1
    runner.start(tok)
    while remaining > 0 and any(live):
        k = min(chunk, remaining)
        rows = runner.advance(k)
        for seq in range(B):
            for tk in rows[seq]:
                if not live[seq]:
                    break
                live[seq] = _accept(seq, tk, results, done, eos, stop_fn)
        remaining -= k
        chunk = min(2 * chunk, runner.CHUNK)
    return results
