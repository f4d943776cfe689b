"""Images decoded and preprocessed in worker processes (`mmeval.models.image_workers`): the same
tensors and the same predictions as the in-process threads, and a broken image fails only its own
requests. Spawned workers import torch: marked slow."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from mmeval.models.image_workers import ImageProcesses
from mmeval.types import GenerationConfig, ImageRef, Request

pytestmark = pytest.mark.slow


def _jpeg(seed: int, size=(64, 48)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _requests(broken: bool = True) -> list[Request]:
    refs = [ImageRef(source=f"img{i}", data=_jpeg(i)) for i in range(4)]
    if broken:
        refs[2] = ImageRef(source="broken one", data=b"not an image")
    gen = GenerationConfig(max_new_tokens=3, candidates=("Yes", "No"))
    return [Request(doc_id=f"{i}/{q}", prompt=f"Is there a {w} in the image?", images=(ref,), group_key=f"img{i}",
                    generation=gen)
            for i, ref in enumerate(refs) for q, w in enumerate(("cat", "dog"))]


ARGS = {"cobra": {"tiny": "1"}, "vl-mamba": {"tiny": "1", "mmc": "mlp"}}


@pytest.fixture(scope="module")
def adapters():
    """Per family: (an adapter with threads, one whose runtime uses 2 worker processes)."""
    from mmeval.registry import get_model_class

    made = {}

    def get(family):
        if family not in made:
            threads, procs = (get_model_class(family).from_args(ARGS[family]) for _ in range(2))
            assert threads.runtime._processes is None  # the CPU default: threads
            procs.runtime._processes = ImageProcesses(procs.runtime.preprocess, workers=2)
            assert procs.runtime._processes.wait_ready(timeout=300)
            made[family] = threads, procs
        return made[family]

    yield get
    for pair in made.values():
        for a in pair:
            a.close()


def test_workers_give_the_in_process_tensors(adapters):
    procs = adapters("cobra")[1].runtime._processes  # Cobra's two towers: a dict of tensors per image
    transform = adapters("cobra")[0].runtime.preprocess
    refs = [r.images[0] for r in _requests()][::2]
    got = procs.preprocess(refs)
    assert got[2] is None  # the broken image: no tensors, no exception
    for ref, out in zip(refs, got, strict=True):
        if ref.source == "broken one":
            continue
        want = transform(ref.load())
        assert out.keys() == want.keys() and all(torch.equal(out[k], want[k]) for k in want)


@pytest.mark.parametrize("family", ["cobra", "vl-mamba"])
def test_predictions_identical_with_worker_processes(adapters, family):
    threads, procs = adapters(family)
    reqs_a, reqs_b = _requests(), _requests()
    procs.prepare(reqs_b)  # as the runner's prefetch thread does
    assert len(procs.runtime._pixels) == 3  # the three readable images, preprocessed by the workers
    assert all(r.images[0]._image is None for r in reqs_b)  # ... not decoded in this process
    a, b = threads.generate(reqs_a), procs.generate(reqs_b)
    for p, q in zip(a, b, strict=True):
        assert (p.text, p.n_tokens) == (q.text, q.n_tokens)
        assert p.candidate_probs == q.candidate_probs  # bitwise: the same tensors went in
    # the broken image fails its own two questions only, with the image's own error
    for preds in (a, b):
        failed = [p.error for p in preds if p.error]
        assert len(failed) == 2
        assert all(e.startswith("unreadable image broken one: UnidentifiedImageError") for e in failed)
