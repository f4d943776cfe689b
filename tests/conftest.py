"""Shared fixtures: tiny datasets in the real layouts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def pytest_runtest_setup(item):
    """A test marked `gpu` that was selected on a machine without CUDA fails with how to deselect it
    (`make test` and `make test-all` deselect the marker there; it is never skipped silently)."""
    if item.get_closest_marker("gpu") is not None:
        import torch

        if not torch.cuda.is_available():
            pytest.fail("marked gpu: needs CUDA; on a CPU machine deselect it with -m 'not gpu' "
                        "(make test / make test-all do)", pytrace=False)


@pytest.fixture(scope="session")
def java() -> str:
    """pycocoevalcap's PTB tokenizer and METEOR run on Java, a requirement of the caption metrics
    (README): missing, the test fails with the install line instead of being skipped."""
    path = shutil.which("java")
    if path is None:
        pytest.fail("`java` is not on PATH: the caption metrics need a Java runtime "
                    "(Debian/Ubuntu: apt-get install default-jre-headless)", pytrace=False)
    return path


def pope_rows(n_images: int = 6, per_image: int = 3, broken: set[int] = frozenset()):
    """POPE rows in lmms-lab's columns: each image gets questions in the three categories."""
    from PIL import Image

    rows = []
    cats = ("random", "popular", "adversarial")
    for img in range(n_images):
        image = Image.new("RGB", (12, 10), (30 * img % 255, 80, 200 - 20 * img % 200))
        for q in range(per_image):
            i = img * per_image + q
            cell = b"not an image" if img in broken else image
            rows.append({"question_id": str(i), "question": f"Is there a {['cat', 'dog', 'car'][q % 3]} in the image?",
                         "answer": "yes" if (i * 7) % 3 else "no", "image_source": f"COCO_val2014_{img:012d}",
                         "image": cell, "category": cats[q % 3]})
    return rows


@pytest.fixture
def pope_data(tmp_path: Path) -> Path:
    from tasks.pope import Pope

    root = tmp_path / "data"
    Pope.write_layout(root / "pope", pope_rows())
    return root
