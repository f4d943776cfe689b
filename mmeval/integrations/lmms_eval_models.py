"""mmeval's model adapters as lmms-eval models: `lmms-eval --model vl_mamba --model_args tiny=1 --tasks pope`.

lmms-eval (0.7.x) finds third-party models through the Python entry-point group `lmms_eval.models`;
each entry point names a `ModelManifest`, a list of them, or a callable returning one. mmeval
declares (in pyproject.toml)

    [project.entry-points."lmms_eval.models"]
    mmeval = "mmeval.integrations.lmms_eval_models:lmms_eval_manifests"

and the manifests map lmms-eval names to `lmms` subclasses of this module: one per registered
adapter that declares its lmms-eval name (`lmms_eval = LmmsEvalName(...)` on the adapter class),
made here on first use and named after the adapter class (`VLMambaAdapter` -> `VLMambaLMM`), and
`MMEvalLMM` for any adapter:

    vl_mamba (alias vl-mamba) -> mmeval adapter `vl-mamba`   (VLMambaLMM)
    cobra                     -> mmeval adapter `cobra`      (CobraLMM)
    mmeval_mock               -> mmeval adapter `mock`       (MockLMM; deterministic, for tests)
    mmeval                    -> any mmeval adapter, chosen by `--model_args adapter=NAME,...`

Each wraps one mmeval `Adapter`, so the adapter's own chat template, batching and per-image
prefix-state reuse apply: lmms-eval's `--model_args` are the adapter's `--model-args`
(`k=v,...`, kept as strings), `--batch_size` and `--device` go to the wrapper. `generate_until`
turns lmms-eval Instances into mmeval Requests whose group key is a content hash of the image,
orders them with mmeval's scheduler (questions on one image in consecutive batches) and decodes
greedily. `loglikelihood` serves single-token continuations (e.g. " Yes"/" No", " A".." D") from the
adapter's next-token candidate probabilities; anything longer raises NotImplementedError.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lmms_eval.api.model import lmms
from lmms_eval.models.registry_v2 import ModelManifest

from mmeval.types import GenerationConfig, ImageError, ImageRef, Prediction, Request

IMAGE_TOKEN = "<image>"  # lmms-eval contexts sometimes carry one; mmeval prompts never do
DEFAULT_MAX_NEW_TOKENS = GenerationConfig().max_new_tokens
_WRAPPER_KEYS = ("batch_size", "max_batch_size", "device")  # consumed by the wrapper, not the adapter


# ---- registration ----------------------------------------------------------------------------
def lmms_eval_manifests() -> list[ModelManifest]:
    """The payload of mmeval's `lmms_eval.models` entry point."""
    named = [ModelManifest(model_id=cls.lmms_eval.model_id, simple_class_path=f"{__name__}.{class_name}",
                           aliases=tuple(cls.lmms_eval.aliases))
             for class_name, cls in _named_adapters().items()]
    return named + [ModelManifest(model_id="mmeval", simple_class_path=f"{__name__}.MMEvalLMM")]


def _named_adapters() -> dict[str, type]:
    """{lmms class name: adapter class} of the registered adapters that declare an lmms-eval name."""
    from mmeval.registry import model_classes

    return {cls.__name__.removesuffix("Adapter") + "LMM": cls for cls in model_classes().values()
            if getattr(cls, "lmms_eval", None) is not None}


@functools.cache
def _lmm_class(class_name: str) -> type:
    adapter = _named_adapters()[class_name]
    doc = f"lmms-eval model backed by the mmeval adapter `{adapter.name}`."
    return type(class_name, (MMEvalLMM,), {"adapter_name": adapter.name, "__module__": __name__,
                                           "__qualname__": class_name, "__doc__": doc})


def __getattr__(name: str):
    """The per-family classes the manifests name (`VLMambaLMM`, ...), made on first use."""
    if name.endswith("LMM") and name in _named_adapters():
        return _lmm_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---- images ----------------------------------------------------------------------------------
@dataclass(eq=False)
class PILImageRef(ImageRef):
    """An ImageRef over an image that is already decoded (an lmms-eval `doc_to_visual` result).

    Either holds the image (`image`) for its whole life, or re-obtains it through `loader` on
    `load()` and drops it on `release()`, so a long task never holds every image at once.
    `content_hash` identifies the pixels; `digest_bytes()` returns it without decoding anything.
    """

    image: Any = field(default=None, repr=False)
    loader: Callable[[], Any] | None = field(default=None, repr=False)
    content_hash: str = ""

    def load(self):
        with self._lock:
            if self.image is None:
                if self.loader is None:
                    raise ImageError(f"unreadable image {self.source}: released and no loader")
                try:
                    self.image = _rgb(self.loader())
                except Exception as exc:
                    raise ImageError(f"unreadable image {self.source}: {type(exc).__name__}: {exc}") from None
            return self.image

    def digest_bytes(self) -> bytes:
        return self.content_hash.encode()

    def release(self) -> None:
        if self.loader is not None:
            with self._lock:
                self.image = None


def _rgb(img):
    return img if img.mode == "RGB" else img.convert("RGB")


def pil_content_hash(img) -> str:
    """sha256 over the RGB pixels and the size: equal pictures in different rows hash alike."""
    rgb = _rgb(img)
    h = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    h.update(rgb.tobytes())
    return h.hexdigest()


def image_ref_from_pil(img, source: str = "in-memory image", loader: Callable[[], Any] | None = None) -> PILImageRef:
    """Wrap a decoded PIL image as an mmeval ImageRef (kept in memory unless `loader` is given)."""
    rgb = _rgb(img)
    return PILImageRef(source=source, image=None if loader else rgb, loader=loader,
                       content_hash=pil_content_hash(rgb))


def _flatten(visuals) -> list:
    if visuals is None:
        return []
    if not isinstance(visuals, (list, tuple)):
        return [visuals]
    out = []
    for v in visuals:
        out.extend(_flatten(v))
    return out


# ---- the model ---------------------------------------------------------------------------------
class MMEvalLMM(lmms):
    """An lmms-eval model backed by an mmeval Adapter (`adapter=NAME` in --model_args)."""

    is_simple = True
    adapter_name: ClassVar[str | None] = None  # fixed by the subclasses below

    def __init__(self, batch_size: int | str = 1, max_batch_size: int | None = None, device: str | None = None,
                 **model_args: Any) -> None:
        super().__init__()
        from mmeval.registry import get_model_class

        args = {k: _arg_str(v) for k, v in model_args.items()}
        name = self.adapter_name or args.pop("adapter", None)
        if not name:
            raise ValueError("lmms-eval model 'mmeval' needs --model_args adapter=NAME,... (an mmeval model name)")
        self.batch_size = _batch_size(batch_size, max_batch_size)
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if not device:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        if world > 1 and device == "cuda":  # one process per GPU under accelerate/torchrun
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0') or 0)}"
        self._device = device
        self.adapter = get_model_class(name).from_args(args, device=device)
        self.adapter_args = args
        self._warned: set[str] = set()

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
        """Like lmms.create_from_arg_string, but values stay strings as the adapter expects them
        (lmms-eval's parser would turn `seed=007` into 7 and `answers=True` into a bool)."""
        kwargs = {k: v for k, v in (additional_config or {}).items() if v is not None}
        kwargs.update(parse_model_args(arg_string))  # --model_args win over --device / --batch_size
        return cls(**kwargs)

    @property
    def device(self) -> str:
        return self._device

    def model_identity(self) -> dict[str, Any]:
        return self.adapter.identity()

    def clean(self):
        try:
            self.adapter.close()
        finally:
            super().clean()

    # ---- lmms-eval Instances -> mmeval Requests ---------------------------------------------
    def _images(self, doc_to_visual, task: str, split: str, doc_id) -> tuple[tuple[ImageRef, ...], str]:
        """The request's ImageRefs (re-loaded lazily from the dataset row) and its group key."""
        if doc_to_visual is None:
            return (), ""
        doc_loader = lambda: _flatten(doc_to_visual(self.task_dict[task][split][doc_id]))  # noqa: E731
        visuals = doc_loader()
        refs: list[ImageRef] = []
        for k, v in enumerate(visuals):
            source = f"{task}/{split}/{doc_id}#{k}"
            refs.append(_visual_ref(v, source, lambda k=k: doc_loader()[k]))
        del visuals
        if not refs:
            return (), ""
        h = hashlib.sha256()
        for ref in refs:
            h.update(ref.content_hash.encode() if isinstance(ref, PILImageRef)
                     else hashlib.sha256(ref.digest_bytes()).hexdigest().encode())
        return tuple(refs), "img:" + h.hexdigest()

    def _generation(self, gen_kwargs: dict | None) -> GenerationConfig:
        gen = dict(gen_kwargs or {})
        until = gen.get("until") or ()
        if isinstance(until, str):
            until = (until,)
        elif not isinstance(until, (list, tuple)):
            raise ValueError(f"gen_kwargs['until'] must be a string or a list of strings, got {type(until).__name__}")
        sampled = (gen.get("do_sample") is True or float(gen.get("temperature") or 0) > 0
                   or int(gen.get("num_beams") or 1) > 1)
        if sampled:
            asked = {k: gen.get(k) for k in ("do_sample", "temperature", "num_beams") if k in gen}
            self._warn_once("sampling", "mmeval adapters decode greedily; do_sample/temperature/num_beams "
                            f"in gen_kwargs are ignored ({asked})")
        max_new = gen.get("max_new_tokens")
        return GenerationConfig(max_new_tokens=int(max_new) if max_new is not None else DEFAULT_MAX_NEW_TOKENS,
                                stop=tuple(s for s in until if s))

    def _request(self, context: str, doc_to_visual, doc_id, task: str, split: str,
                 generation: GenerationConfig) -> Request:
        images, group_key = self._images(doc_to_visual, task, split, doc_id)
        prompt = (context or "").replace(IMAGE_TOKEN, "").strip()
        return Request(doc_id=f"{task}/{split}/{doc_id}", prompt=prompt, images=images, group_key=group_key,
                       generation=generation)

    def _batches(self, requests: Sequence[Request]) -> list[list[int]]:
        from mmeval.scheduler import schedule

        return schedule(requests, self.batch_size)

    def _answer(self, requests: Sequence[Request], desc: str) -> list[Prediction]:
        from tqdm import tqdm

        preds: list[Prediction | None] = [None] * len(requests)
        with tqdm(total=len(requests), disable=(self.rank != 0), desc=desc) as bar:
            for batch in self._batches(requests):
                reqs = [requests[i] for i in batch]
                try:
                    out = self.adapter.generate(reqs)
                finally:
                    _release(reqs)
                if len(out) != len(batch):
                    raise RuntimeError(f"adapter {self.adapter.name} answered {len(out)} of {len(batch)} requests")
                for i, p in zip(batch, out, strict=True):
                    preds[i] = p
                bar.update(len(batch))
        return preds  # type: ignore[return-value]

    # ---- the lmms interface -----------------------------------------------------------------
    def generate_until(self, requests) -> list[str]:
        built = []
        for inst in requests:
            context, gen_kwargs, doc_to_visual, doc_id, task, split = inst.args[:6]
            built.append(self._request(context, doc_to_visual, doc_id, task, split, self._generation(gen_kwargs)))
        preds = self._answer(built, desc=f"{self.adapter.name} responding")
        texts = []
        for inst, req, pred in zip(requests, built, preds, strict=True):
            if pred.error:
                self._warn_once(pred.error, f"{req.doc_id}: {pred.error}; answering ''")
            text = cut_at_stop(pred.text or "", req.generation.stop)
            texts.append(text)
            self.cache_hook.add_partial("generate_until", (inst.args[0], inst.args[1]), text)
        return texts

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        """log P(continuation | context) for single-token continuations, from the adapter's
        next-token candidate probabilities. The continuations of one context (a multiple-choice
        doc's options) are asked together; `is_greedy` says the continuation is the most probable
        of them (not of the whole vocabulary)."""
        groups: dict[tuple, dict[str, Any]] = {}
        keys = []
        for inst in requests:
            if len(inst.args) < 6:
                raise NotImplementedError(
                    f"{type(self).__name__}.loglikelihood needs (context, continuation, doc_to_visual, doc_id, task, "
                    "split) requests; context-free requests (e.g. acc_mutual_info) are not supported by mmeval adapters"
                )
            context, continuation, doc_to_visual, doc_id, task, split = inst.args[:6]
            cand = self._candidate(continuation)
            key = (task, split, doc_id, context)
            g = groups.setdefault(key, {"args": (context, doc_to_visual, doc_id, task, split), "cands": []})
            if cand not in g["cands"]:
                g["cands"].append(cand)
            keys.append((key, cand))

        # one mmeval Request per context; contexts with the same candidate set share adapter calls
        by_cands: dict[tuple[str, ...], list[tuple]] = {}
        for key, g in groups.items():
            by_cands.setdefault(tuple(g["cands"]), []).append(key)
        probs: dict[tuple, dict[str, float]] = {}
        for cands, ctx_keys in by_cands.items():
            gen = GenerationConfig(max_new_tokens=0, candidates=cands)
            reqs = [self._request(*groups[k]["args"], generation=gen) for k in ctx_keys]
            from tqdm import tqdm

            with tqdm(total=len(reqs), disable=(self.rank != 0), desc=f"{self.adapter.name} scoring") as bar:
                for batch in self._batches(reqs):
                    batch_reqs = [reqs[i] for i in batch]
                    try:
                        out = self.adapter.answer_probabilities(batch_reqs, cands)
                    finally:
                        _release(batch_reqs)
                    for i, p in zip(batch, out, strict=True):
                        probs[ctx_keys[i]] = p or {}
                    bar.update(len(batch))

        results = []
        for inst, (key, cand) in zip(requests, keys, strict=True):
            p = probs[key]
            if cand not in p:  # e.g. the image was unreadable
                self._warn_once(f"noprob:{key[:3]}", f"{key[0]}/{key[1]}/{key[2]}: no probability for {cand!r}")
                res = (float("-inf"), False)
            else:
                pc = float(p[cand])
                res = (math.log(pc) if pc > 0 else float("-inf"), pc >= max(p.values()))
            results.append(res)
            self.cache_hook.add_partial("loglikelihood", (inst.args[0], inst.args[1]), res)
        return results

    def generate_until_multi_round(self, requests) -> list[str]:
        raise NotImplementedError(
            f"{type(self).__name__} (mmeval adapter {self.adapter.name}) answers single-turn requests only; "
            "multi-round tasks are not supported")

    # ---- helpers -------------------------------------------------------------------------------
    def _candidate(self, continuation: str) -> str:
        """The candidate answer of a continuation: without its leading space (mmeval candidates are
        the first token as the model emits it after the answer cue), and exactly one token."""
        cand = (continuation or "").strip()
        if not cand:
            raise NotImplementedError("mmeval adapters score non-empty single-token continuations only; got "
                                      f"{continuation!r}")
        tok = getattr(self.adapter, "tokenizer", None) or getattr(getattr(self.adapter, "runtime", None),
                                                                  "tokenizer", None)
        if tok is not None and hasattr(tok, "encode"):
            n = len(tok.encode(cand, add_special_tokens=False))
        else:
            n = len(cand.split())
        if n != 1:
            raise NotImplementedError(
                f"mmeval adapter {self.adapter.name} scores single-token continuations only (next-token candidate "
                f"probabilities); {continuation!r} is {n} tokens. Use a generate_until variant of the task instead.")
        return cand

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, stacklevel=3)


# ---- small functions -------------------------------------------------------------------------
def parse_model_args(text: str | None) -> dict[str, str]:
    """`k=v,k2=v2` -> {k: v}, values kept as strings (mmeval's --model-args syntax)."""
    out: dict[str, str] = {}
    for piece in filter(None, (p.strip() for p in (text or "").split(","))):
        if "=" not in piece:
            raise ValueError(f"--model_args: expected key=value pairs separated by commas, got {piece!r}")
        k, v = piece.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """Text up to the first stop string (adapters stop on them; this trims what they emitted)."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]


def _arg_str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _batch_size(batch_size: int | str, max_batch_size: int | None) -> int:
    s = str(batch_size if batch_size is not None else 1).strip()
    if s.startswith("auto"):
        n = int(max_batch_size or (s.split(":", 1)[1] if ":" in s else 0) or 1)
        # stacklevel=1: the warning is about the option's value, not about a caller's line
        warnings.warn(f"mmeval adapters have no automatic batch size; using batch_size={n}", stacklevel=1)
        return max(1, n)
    n = int(s)
    if n < 1:
        raise ValueError(f"batch_size must be at least 1, got {n}")
    return n


def _visual_ref(v: Any, source: str, loader: Callable[[], Any]) -> ImageRef:
    from PIL import Image

    if isinstance(v, Image.Image):
        return image_ref_from_pil(v, source=source, loader=loader)
    if isinstance(v, (str, os.PathLike)):
        return ImageRef(source=str(v), path=str(v))
    if isinstance(v, (bytes, bytearray)):
        return ImageRef(source=source, data=bytes(v))
    if isinstance(v, dict) and (v.get("bytes") or v.get("path")):  # an undecoded datasets Image cell
        return ImageRef(source=v.get("path") or source, data=v.get("bytes"), path=v.get("path"))
    raise NotImplementedError(f"mmeval adapters take images; {source} gave a {type(v).__name__}")


def _release(requests: Sequence[Request]) -> None:
    for r in requests:
        for ref in r.images:
            ref.release()
