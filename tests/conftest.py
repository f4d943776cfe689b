"""Shared fixtures: tiny datasets in the real layouts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


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
