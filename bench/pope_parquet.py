"""Write a POPE-shaped dataset in lmms-lab's parquet layout (N COCO-sized JPEGs x Q questions),
for timing `mmeval run` end to end, e.g. on 1 vs 2 GPUs:

    python bench/pope_parquet.py --out /tmp/popebench --images 100
    mmeval run --model cobra --model-args random_init=1,dtype=bfloat16 --tasks pope --data /tmp/popebench --device cuda
    mmeval run ... --num-processes 2
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmeval.benchmark.workloads import OBJECTS, jpeg_images  # noqa: E402
from tasks.pope import Pope  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--questions", type=int, default=18)
    a = ap.parse_args()
    rows = []
    for i, data in enumerate(jpeg_images(a.images)):
        for q in range(a.questions):
            rows.append({"question_id": str(i * a.questions + q), "question": f"Is there a {OBJECTS[q % len(OBJECTS)]} in the image?",
                         "answer": "yes" if (i + q) % 2 else "no", "image_source": f"bench_{i:06d}", "image": data,
                         "category": ("random", "popular", "adversarial")[q % 3]})
    print(Pope.write_layout(Path(a.out) / "pope", rows))


if __name__ == "__main__":
    main()
