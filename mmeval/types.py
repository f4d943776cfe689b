"""The records that flow through a run: documents, requests, predictions, sample records.

Tasks produce `Doc`s and `Request`s, adapters answer `Request`s with `Prediction`s, and the
runner writes one `SampleRecord` per document. Everything here is plain data.
"""

from __future__ import annotations

import io
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class ImageError(ValueError):
    """An image that cannot be decoded; the sample is recorded as an error and the run goes on."""


@dataclass(eq=False)
class ImageRef:
    """An image decoded on first use: encoded bytes (parquet, TSV) or a file path (official layouts).

    `source` says where the image came from, for error messages. The decoded image is kept on the
    object until `release()` so a prefetch thread can decode it ahead of the model.
    """

    source: str
    data: bytes | None = None
    path: str | None = None
    _image: Any = field(default=None, repr=False)
    _error: str | None = field(default=None, repr=False)
    _key: str | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def failed(cls, source: str, reason: str) -> ImageRef:
        """An image known to be unusable before it is read (e.g. a path outside the data folder):
        loading it raises ImageError(reason), so its sample fails and the others run."""
        ref = cls(source=source)
        ref._error = reason
        return ref

    def load(self):
        """Return the image as an RGB PIL image, or raise ImageError naming the source."""
        from PIL import Image

        with self._lock:
            if self._image is None and self._error is None:
                try:
                    if self.data is not None:
                        img = Image.open(io.BytesIO(self.data))
                    elif self.path is not None:
                        if not Path(self.path).is_file():
                            raise FileNotFoundError(f"no such file: {self.path}")
                        img = Image.open(self.path)
                    else:
                        raise ValueError("no image data or path")
                    img.load()
                    self._image = img.convert("RGB")
                except Exception as exc:  # PIL raises many types; all mean "unreadable"
                    self._error = f"unreadable image {self.source}: {type(exc).__name__}: {exc}"
            if self._error is not None:
                raise ImageError(self._error)
            return self._image

    def digest_bytes(self) -> bytes:
        """Raw bytes identifying the image (for deterministic test models), without decoding."""
        if self.data is not None:
            return self.data
        if self.path is not None and Path(self.path).is_file():
            return Path(self.path).read_bytes()
        return self.source.encode()

    def content_key(self) -> str:
        """A hash of the image bytes (computed once): the same picture in two rows, one key."""
        if self._key is None:
            import hashlib

            self._key = hashlib.blake2b(self.digest_bytes(), digest_size=16).hexdigest()
        return self._key

    def release(self) -> None:
        with self._lock:
            self._image = None


@dataclass
class Doc:
    """One benchmark item: its id, its images, the fields the task needs, and the gold target."""

    doc_id: str
    fields: dict[str, Any]
    target: Any = None
    images: tuple[ImageRef, ...] = ()
    group_key: str = ""  # image id: requests on the same image are scheduled together


@dataclass(frozen=True)
class GenerationConfig:
    """How a request is answered: greedy decoding up to max_new_tokens, stop strings, and
    optional candidate answers whose next-token probabilities are returned as well."""

    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    candidates: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "greedy": True, "stop": list(self.stop),
                "candidates": list(self.candidates)}


@dataclass
class Request:
    """What a task asks of a model for one document.

    `prompt` is the user turn's text without any chat template and without an image token:
    the adapter owns the template and puts the image where its model expects it.
    """

    doc_id: str
    prompt: str
    images: tuple[ImageRef, ...] = ()
    group_key: str = ""
    generation: GenerationConfig = field(default_factory=GenerationConfig)


@dataclass
class Prediction:
    """A model's answer: generated text, and next-token probabilities of candidates if asked."""

    text: str = ""
    candidate_probs: dict[str, float] | None = None
    n_tokens: int = 0
    error: str | None = None


@dataclass
class SampleRecord:
    """One line of `<task>.samples.jsonl`."""

    doc_id: str
    prompt: str
    prediction: str
    target: Any
    scores: dict[str, Any]
    candidate_probs: dict[str, float] | None = None
    n_tokens: int = 0
    error: str | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> SampleRecord:
        return cls(
            doc_id=str(obj["doc_id"]),
            prompt=obj.get("prompt", ""),
            prediction=obj.get("prediction", ""),
            target=obj.get("target"),
            scores=obj.get("scores") or {},
            candidate_probs=obj.get("candidate_probs"),
            n_tokens=int(obj.get("n_tokens", 0) or 0),
            error=obj.get("error"),
        )
