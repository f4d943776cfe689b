"""Answering requests with a Mamba VLM: vision features once per image, the recurrent state after
`prompt-before-image + image` once per image and reused by every question on it, exact padded
batching of the question suffixes, then batched greedy decoding from the per-question states.

Both VL-Mamba and Cobra put the image before the question, so the same runtime serves both: the
adapter supplies the model (`encode_images`, `lm`), the image preprocessing and the prompt split
(token ids before the image, token ids after it). `prefix_cache=False` runs every request as one
full sequence instead; the two give the same tokens (tested).
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch.profiler import record_function

from mmeval.models.image_workers import ImageProcesses
from mmeval.types import ImageError, Prediction, Request


class VisionLanguageModel(Protocol):
    lm: Any  # mmeval.models.mamba.MambaLM

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] (or a dict of such for fused towers) -> [N, P, d_model] LM-space tokens."""


@dataclass
class PromptSplit:
    before_image: list[int]  # e.g. [BOS] (Cobra) or BOS + system + "USER: " (VL-Mamba)
    after_image: list[int]  # the rest of the prompt up to the assistant cue


class VLMRuntime:
    """Batched, prefix-reusing inference for one VLM. Not thread-safe; one per adapter."""

    def __init__(self, model: VisionLanguageModel, tokenizer: Any, preprocess: Callable[[Any], Any],
                 split_prompt: Callable[[str, bool], PromptSplit], eos_token_id: int | None,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 prefix_cache: bool = True, cache_images: int = 64, cuda_graphs: bool = False,
                 candidate_prefix: str = "", image_processes: bool | None = None):
        self.model, self.tokenizer, self.preprocess = model, tokenizer, preprocess
        self.split_prompt, self.eos_token_id = split_prompt, eos_token_id
        self.device, self.dtype = torch.device(device), dtype
        self.prefix_cache, self.cuda_graphs = prefix_cache, cuda_graphs
        self._states: OrderedDict[Any, Any] = OrderedDict()  # image key -> prefix state (batch 1)
        self._cache_images = cache_images
        self._candidate_ids: dict[str, int] = {}
        self._pixels: dict[Any, Any] = {}  # image key -> preprocessed tensor, filled by prepare()
        self._pool: ThreadPoolExecutor | None = None
        # images decoded and preprocessed in worker processes (default: on CUDA, where the main
        # process's CPU time launches the GPU's work); threads otherwise (`image_workers`)
        self._processes: ImageProcesses | None = None
        if image_processes if image_processes is not None else self.device.type == "cuda":
            self._processes = ImageProcesses(preprocess)
        # suffixes up to this many tokens are prefilled by a captured CUDA graph (with cuda_graphs)
        self.graph_prefill_max_len = 64
        # How the first answer word is spelled after this template's assistant cue: after
        # "ASSISTANT:" a GPT-NeoX model writes " Yes" (one token with its space); after a
        # newline cue it writes "Yes". prismatic encodes the bare candidate; we encode what the
        # template makes the model emit.
        self.candidate_prefix = candidate_prefix

    # ---- pieces -------------------------------------------------------------------------
    def candidate_token(self, candidate: str) -> int:
        """First token of a candidate answer as the model would emit it right after the prompt."""
        if candidate not in self._candidate_ids:
            ids = self.tokenizer.encode(self.candidate_prefix + candidate, add_special_tokens=False)
            pre = (
                self.tokenizer.encode(self.candidate_prefix, add_special_tokens=False) if self.candidate_prefix else []
            )
            if pre and ids[: len(pre)] == pre and len(ids) > len(pre):
                ids = ids[len(pre):]  # the space is a token of its own (byte-level tokenizers)
            if not ids:
                raise ValueError(f"candidate answer {candidate!r} tokenizes to nothing")
            self._candidate_ids[candidate] = ids[0]
        return self._candidate_ids[candidate]

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        """Host tensor -> device without a hidden sync: a copy from pageable memory waits for the
        GPU to drain its queue, which would serialise the CPU's launches with the GPU's work."""
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def _stack(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """Stack preprocessed images on the device; on CUDA through one pinned host buffer (written
        once by the stack, copied without a sync), then cast to the model's dtype there."""
        if self.device.type != "cuda":
            return torch.stack(tensors).to(self.dtype)
        out = torch.empty((len(tensors), *tensors[0].shape), dtype=tensors[0].dtype, pin_memory=True)
        torch.stack(tensors, out=out)
        return out.to(self.device, non_blocking=True).to(self.dtype)

    def _pixel_batch(self, keys: list[Any]):
        tensors = [self._pixels.pop(k) for k in keys]
        if isinstance(tensors[0], dict):
            return {k: self._stack([t[k] for t in tensors]) for k in tensors[0]}
        return self._stack(tensors)

    def _encode(self, pixels) -> torch.Tensor:
        """Vision tower(s) -> LM-space tokens. On CUDA, attention avoids the cuDNN backend: for
        these ViTs it costs the CPU ~1 ms per call to set up (51 calls per Cobra image batch, as
        long as the GPU work itself), while flash attention is launched in microseconds."""
        if self.device.type != "cuda":
            return self.model.encode_images(pixels).to(self.dtype)
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
            return self.model.encode_images(pixels).to(self.dtype)

    def _embed_ids(self, ids: list[int]) -> torch.Tensor:
        t = self._to_device(torch.tensor([ids], dtype=torch.long))
        return self.model.lm.embed(t).to(self.dtype)

    @staticmethod
    def _image_key(req: Request) -> Any:
        # Content, not object identity: parquet rows carry their own copy of a shared image.
        return (req.group_key, req.images[0].content_key())

    def prepare(self, requests: Sequence[Request]) -> None:
        """Background thread: decode and preprocess the images of the next batch, several at a
        time (in worker processes when they are running, else threads: PIL and torch release the
        GIL for part of the work), so the GPU does not wait on them."""
        todo = {}
        for req in requests:
            if not req.images:
                continue
            key = self._image_key(req)
            if key in self._pixels or key in todo or (self.prefix_cache and key in self._states):
                continue
            todo[key] = req.images[0]

        def work(item):
            key, ref = item
            try:
                self._pixels[key] = self.preprocess(ref.load())
            except ImageError:
                pass  # generate() reports it for this request

        if self._processes is not None and self._processes.ready and todo:
            try:
                for key, out in zip(todo, self._processes.preprocess(list(todo.values())), strict=True):
                    if out is not None:
                        self._pixels[key] = out
                return
            except BrokenProcessPool as exc:
                warnings.warn(f"image worker processes stopped ({exc}); decoding images in threads from now on",
                              stacklevel=2)
                self._processes = None
        if len(todo) <= 1:
            list(map(work, todo.items()))
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="mmeval-img")
        list(self._pool.map(work, todo.items()))

    def close(self) -> None:
        """Stop the image workers (threads and processes)."""
        if self._processes is not None:
            self._processes.close()
            self._processes = None
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def free_memory(self) -> None:
        """Drop the cached image states and the model's captured CUDA graphs (all rebuilt on demand),
        e.g. after a batch ran out of GPU memory: graphs captured for a batch size that no longer
        runs would otherwise keep their memory pools."""
        from mmeval.models.mamba.generation import release_cuda_graphs

        self._states.clear()
        release_cuda_graphs(self.model.lm)

    # ---- the batch ---------------------------------------------------------------------
    @torch.inference_mode()
    def generate(self, requests: Sequence[Request]) -> list[Prediction]:
        preds: list[Prediction | None] = [None] * len(requests)
        # 1. images: decoded and preprocessed by prepare() (usually already, in the prefetch
        # thread); a broken image fails its own requests only
        with record_function("mmeval.preprocess"):
            self.prepare(requests)
        images: dict[Any, None] = {}  # keys of the images this batch encodes
        for i, req in enumerate(requests):
            if not req.images:
                continue
            key = self._image_key(req)
            if self.prefix_cache and key in self._states:
                continue
            if key in self._pixels or key in images:
                images[key] = None
                continue
            try:
                req.images[0].load()
                preds[i] = Prediction(error=f"image {req.images[0].source} could not be preprocessed")
            except ImageError as exc:
                preds[i] = Prediction(error=str(exc))
        live = [i for i in range(len(requests)) if preds[i] is None]
        if not live:
            return preds  # type: ignore[return-value]

        if self.prefix_cache:
            with record_function("mmeval.prefix"):
                states, suffixes = self._prefix_states(requests, live, images)
            with record_function("mmeval.suffix_prefill"):
                logits, state = self._prefill(suffixes, states)
        else:
            with record_function("mmeval.full_prefill"):
                logits, state = self._full_prefill(requests, live, images)

        # candidate probabilities: one gather and one transfer for the batch, not one per value
        wanted = sorted({c for i in live for c in requests[i].generation.candidates})
        table: list[list[float]] = []
        if wanted:
            ids = self._to_device(torch.tensor([self.candidate_token(c) for c in wanted]))
            table = torch.softmax(logits.float(), dim=-1)[:, ids].tolist()
        column = {c: k for k, c in enumerate(wanted)}
        for j, i in enumerate(live):
            gen = requests[i].generation
            cand = {c: table[j][column[c]] for c in gen.candidates} if gen.candidates else None
            preds[i] = Prediction(text="", candidate_probs=cand)

        max_new = max(requests[i].generation.max_new_tokens for i in live)
        if max_new > 0:
            with record_function("mmeval.decode"):
                self._decode(requests, live, logits, state, preds)
        return preds  # type: ignore[return-value]

    def _prefix_states(self, requests, live, images):
        """Per live request: the cached state after (before-image ids + image) (batch 1), and the suffix ids."""
        # compute missing prefix states, all new images in one batch
        new_keys = [k for k in images if k not in self._states]
        if new_keys:
            with record_function("mmeval.vision"):
                vis = self._encode(self._pixel_batch(new_keys))  # [N, P, D]
            before = self.split_prompt(requests[live[0]].prompt, True).before_image
            pre = self._embed_ids(before).expand(len(new_keys), -1, -1) if before else vis[:, :0]
            out = self.model.lm(inputs_embeds=torch.cat([pre, vis], dim=1), state=None,
                                return_state=True, logits="none")
            for n, k in enumerate(new_keys):
                self._states[k] = out.state[n]  # a copy of row n, made on the device
        text_state = None
        states, suffixes = [], []
        for i in live:
            req = requests[i]
            split = self.split_prompt(req.prompt, bool(req.images))
            if req.images:
                key = self._image_key(req)
                self._states.move_to_end(key)
                states.append(self._states[key])
                suffixes.append(split.after_image)
            else:  # text-only request: the whole prompt is the suffix from an empty state
                if text_state is None:
                    text_state = self.model.lm.empty_state(1, device=self.device, dtype=self.dtype)
                states.append(text_state)
                suffixes.append(split.before_image + split.after_image)
        while len(self._states) > self._cache_images:
            self._states.popitem(last=False)
        for k in list(self._pixels):  # prepared while this image's state was being computed
            if k in self._states:
                self._pixels.pop(k, None)
        return states, suffixes

    def _prefill(self, suffixes: list[list[int]], states: list):
        """Last-token logits and states after each suffix, from each request's state."""
        from mmeval.models.mamba import MambaState

        longest = max(len(s) for s in suffixes)
        if (self.cuda_graphs and self.device.type == "cuda" and longest <= self.graph_prefill_max_len
                and min(len(s) for s in suffixes) > 0):
            from mmeval.models.mamba.generation import get_cuda_graph_prefill

            return get_cuda_graph_prefill(self.model.lm, len(suffixes), longest)(suffixes, states)
        from mmeval.models.mamba.lm import right_pad_ids

        ids, lengths = right_pad_ids(suffixes)  # on the host, copied once: no host syncs
        out = self.model.lm(input_ids=self._to_device(ids), lengths=lengths, state=MambaState.gather(states),
                            return_state=True, logits="last")
        return out.logits, out.state

    def _full_prefill(self, requests, live, images):
        """The uncached path: each request as one right-padded sequence of embeddings."""
        seqs = []
        pixel_keys = list(images)
        vis = None
        if pixel_keys:
            vis = self._encode(self._pixel_batch(pixel_keys))
        for i in live:
            req = requests[i]
            split = self.split_prompt(req.prompt, bool(req.images))
            parts = []
            if split.before_image:
                parts.append(self._embed_ids(split.before_image)[0])
            if req.images:
                parts.append(vis[pixel_keys.index(self._image_key(req))])
            if split.after_image:
                parts.append(self._embed_ids(split.after_image)[0])
            seqs.append(torch.cat(parts, dim=0))
        lengths = torch.tensor([s.shape[0] for s in seqs])
        embeds = torch.zeros(len(seqs), int(lengths.max()), seqs[0].shape[-1], device=self.device, dtype=self.dtype)
        for j, s in enumerate(seqs):
            embeds[j, : s.shape[0]] = s
        out = self.model.lm(inputs_embeds=embeds, lengths=lengths, state=None, return_state=True, logits="last")
        return out.logits, out.state

    def _decode(self, requests, live, logits, state, preds):
        from mmeval.models.mamba import greedy_generate

        limits = [requests[i].generation.max_new_tokens for i in live]
        stops = [requests[i].generation.stop for i in live]

        def stop_fn(j: int, tokens: list[int]) -> bool:
            if len(tokens) >= limits[j]:
                return True
            if stops[j]:
                # a stop string that completes at this token lies within its last len(stop)
                # tokens (each token is at least one character): decode only that tail
                tail = self.tokenizer.decode(tokens[-max(map(len, stops[j])) - 1:], skip_special_tokens=True)
                return any(s in tail for s in stops[j])
            return False

        tokens = greedy_generate(self.model.lm, logits, state, max_new_tokens=max(limits),
                                 eos_token_id=self.eos_token_id, stop_fn=stop_fn,
                                 use_cuda_graph=self.cuda_graphs and self.device.type == "cuda")
        for j, i in enumerate(live):
            toks = tokens[j][: limits[j]]
            if self.eos_token_id is not None and toks and toks[-1] == self.eos_token_id:
                toks = toks[:-1]
            text = self.tokenizer.decode(toks, skip_special_tokens=True)
            for s in stops[j]:
                if s in text:
                    text = text[: text.index(s)]
            preds[i].text = text.strip()
            preds[i].n_tokens = len(toks)
