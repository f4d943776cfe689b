"""The contract every model family under `model_adapters/` fulfils. An adapter never imports a task.

An adapter loads a checkpoint, owns its model's chat template, and answers batches of
`Request`s: generated text, and next-token probabilities of candidate answers when a request
names candidates (TRI's vlm-evaluation scores closed-set tasks such as POPE this way).

The adapter class is also where a family declares the rest of itself, each part optional (the
`mock` adapter has none): `finetune` (how `mmeval finetune` trains it, with the paper's recipes),
`lmms_eval` (its name as an lmms-eval model) and `demo` (its demo model for `make demo` and the
embedded default). finetune, the lmms-eval plugin and synth read them through the model registry.
"""

from __future__ import annotations

import abc
import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mmeval.errors import ModelArgsError, OptionError, UnknownNameError
from mmeval.types import Prediction, Request


@dataclass(frozen=True)
class LmmsEvalName:
    """How lmms-eval names a family: `lmms-eval --model MODEL_ID` (or an alias)."""

    model_id: str
    aliases: tuple[str, ...] = ()


class Adapter(abc.ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""
    preferred_protocol: ClassVar[str] = "llava"  # the protocol of the paper that introduced the model
    options: ClassVar[dict[str, str]] = {}  # --model-args the adapter accepts, with a one-line help each
    # the rest of the family's declaration (see the module docstring); None: the family has no such part
    finetune: ClassVar[Any] = None  # an mmeval.finetune.specs.ModelSpec
    lmms_eval: ClassVar[LmmsEvalName | None] = None
    demo: ClassVar[Any] = None  # an mmeval.synth.demo_models.DemoSpec

    @classmethod
    @abc.abstractmethod
    def from_args(cls, args: dict[str, str], device: str = "cpu") -> Adapter:
        """Build from `--model-args k=v,...` (strings); unknown keys fail with the known ones listed."""

    @abc.abstractmethod
    def generate(self, requests: Sequence[Request]) -> list[Prediction]:
        """One Prediction per request, in order. An unreadable image gives that request a
        Prediction with `error` set; the others are answered."""

    def prepare(self, requests: Sequence[Request]) -> None:
        """Called from a background thread for the *next* batch while this one runs: decode
        (and, in adapters that override it, preprocess) images so the GPU never waits on them."""
        from mmeval.types import ImageError

        for r in requests:
            for ref in r.images:
                try:
                    ref.load()
                except ImageError:
                    pass  # generate() reports it for this request

    def answer_probabilities(self, requests: Sequence[Request], candidates: Sequence[str]) -> list[dict[str, float]]:
        """Next-token probabilities of each candidate answer (e.g. "Yes"/"No") after each prompt."""
        from dataclasses import replace

        asked = [replace(r, generation=replace(r.generation, max_new_tokens=0, candidates=tuple(candidates)))
                 for r in requests]
        return [p.candidate_probs or {} for p in self.generate(asked)]

    @abc.abstractmethod
    def identity(self) -> dict[str, Any]:
        """What the results file records of the model: name, args, checkpoint, checkpoint_sha256, config."""

    def close(self) -> None:  # noqa: B027 - an optional hook, a no-op unless the adapter holds memory
        """Release memory held by the model (optional)."""

    def free_memory(self) -> None:  # noqa: B027 - an optional hook, a no-op unless the adapter caches
        """Drop what the adapter can rebuild (cached image states, captured CUDA graphs); the runner
        calls it after a batch ran out of GPU memory, before answering its halves (optional)."""

    @classmethod
    def check_args(cls, args: dict[str, str]) -> None:
        unknown = [k for k in args if k not in cls.options]
        if unknown:
            known = ", ".join(f"{k} ({v})" for k, v in cls.options.items()) or "none"
            raise UnknownNameError(f"model {cls.name}: unknown --model-args {', '.join(unknown)}; known: {known}")


DTYPES = ("float32", "bfloat16", "float16")
_DTYPE_ALIASES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16",
                  "half": "float16", "fp32": "float32", "float32": "float32", "float": "float32"}


def parse_dtype(value: str, option: str = "dtype"):
    """A torch dtype from a --model-args string (bf16, bfloat16, fp16, float16, fp32, float32)."""
    import torch

    name = _DTYPE_ALIASES.get(str(value).strip().lower())
    if name is None:
        raise ModelArgsError(f"--model-args {option}={value}: expected one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def parse_flag(value: str | None, default: bool = False, option: str = "flag") -> bool:
    """A boolean from a --model-args string (1/0, true/false, yes/no, on/off; empty: default)."""
    if value is None or value == "":
        return default
    s = str(value).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ModelArgsError(f"--model-args {option}={value}: expected a boolean (1/0/true/false)")


def parse_int(value: str | None, option: str, default: int = 0, minimum: int | None = None) -> int:
    """An integer from a --model-args string (empty: default); anything else names the option."""
    if value is None or str(value).strip() == "":
        return default
    try:
        out = int(str(value).strip())
    except ValueError:
        raise ModelArgsError(f"--model-args {option}={value}: expected an integer") from None
    if minimum is not None and out < minimum:
        raise ModelArgsError(f"--model-args {option}={value}: expected an integer >= {minimum}")
    return out


def parse_float(value: str | None, option: str, default: float = 0.0, minimum: float | None = None) -> float:
    """A finite number from a --model-args string (empty: default); anything else names the option."""
    if value is None or str(value).strip() == "":
        return default
    try:
        out = float(str(value).strip())
    except ValueError:
        out = math.nan
    if not math.isfinite(out) or (minimum is not None and out < minimum):
        bound = f" >= {minimum:g}" if minimum is not None else ""
        raise ModelArgsError(f"--model-args {option}={value}: expected a finite number{bound}")
    return out


_DEVICE = re.compile(r"(cpu|cuda(:\d+)?)")


def parse_device(value: str, option: str = "--device", also: tuple[str, ...] = ()) -> str:
    """`cpu`, `cuda` or `cuda:N` (or one of `also`, e.g. torch's `meta` device for building a model
    without memory), checked against the GPUs torch sees (a missing GPU is one line here, before any
    model is built, not a CUDA error from inside the model)."""
    s = str(value).strip().lower()
    if s in also:
        return s
    if not _DEVICE.fullmatch(s):
        raise OptionError(f"{option} {value}: expected cpu, cuda or cuda:N{''.join(f' or {a}' for a in also)}")
    if s.startswith("cuda"):
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(s.split(":")[1]) if ":" in s else 0
        if n == 0:
            raise OptionError(f"{option} {value}: torch sees no CUDA GPU on this machine; use --device cpu")
        if index >= n:
            raise OptionError(f"{option} {value}: torch sees {n} CUDA GPU(s) (cuda:0 to cuda:{n - 1})")
    return s


@dataclass(frozen=True)
class CommonModelArgs:
    """The --model-args every VLM adapter shares: where and how the model runs, and how it is built."""

    device: Any
    dtype: Any
    tiny: bool
    random_init: bool
    prefix_cache: bool
    cuda_graphs: bool
    kernel: str
    seed: int
    checkpoint: str | None

    @classmethod
    def parse(cls, args: dict[str, str], device: str = "cpu") -> CommonModelArgs:
        import torch

        asked = args.get("device")
        dev = torch.device(parse_device(asked, "--model-args device", also=("meta",)) if asked else device or "cpu")
        on_gpu = dev.type == "cuda"
        return cls(device=dev, dtype=parse_dtype(args.get("dtype") or ("bfloat16" if on_gpu else "float32")),
                   tiny=parse_flag(args.get("tiny"), option="tiny"),
                   random_init=parse_flag(args.get("random_init"), option="random_init"),
                   prefix_cache=parse_flag(args.get("prefix_cache"), True, option="prefix_cache"),
                   # graphs on by default on CUDA
                   cuda_graphs=parse_flag(args.get("cuda_graphs"), on_gpu, option="cuda_graphs"),
                   kernel=args.get("kernel") or "auto", seed=parse_int(args.get("seed"), "seed"),
                   checkpoint=args.get("checkpoint") or None)


def sha256_of_path(path: str | Path) -> str:
    """sha256 over a checkpoint file, or over every file of a checkpoint directory (sorted by
    relative path, names included), so the results file pins exactly what was evaluated."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
