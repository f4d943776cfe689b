"""Write a POPE-shaped dataset in lmms-lab's parquet layout (N COCO-sized JPEGs x Q questions, the
images of `mmeval bench`'s POPE-shaped workload), plus the word-level tokenizer the bench gives
random-weight models, for timing the user's command, `mmeval run`, against the bench:

    python bench/pope_parquet.py --out /tmp/pb                  # 500 images x 18 questions
    mmeval run --model cobra --model-args random_init=1,dtype=bfloat16,tokenizer=/tmp/pb/tokenizer \\
        --tasks pope --protocol prismatic --data /tmp/pb --device cuda --bootstrap 0 --no-progress
    (the same with --model vl-mamba; --num-processes 2 for two GPUs)

Compare the results file's `timings` with the bench's "pope prismatic batched" line of the same
model (both: next-token probabilities of Yes/No, no decoding; with random weights the llava
protocol would decode to its 128-token cap, since no EOS comes): `samples_per_s` (answering,
warm-up included), `steady_samples_per_s` (without the first batch at each size), `batch_size`
(auto's choice), `first_answer_s` (from the command's start: imports, `data_s`, `load_s`, warm-up).
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
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--questions", type=int, default=18)
    a = ap.parse_args()
    rows = []
    for i, data in enumerate(jpeg_images(a.images)):
        for q in range(a.questions):
            rows.append(
                {
                    "question_id": str(i * a.questions + q),
                    "question": f"Is there a {OBJECTS[q % len(OBJECTS)]} in the image?",
                    "answer": "yes" if (i + q) % 2 else "no",
                    "image_source": f"bench_{i:06d}",
                    "image": data,
                    "category": ("random", "popular", "adversarial")[q % 3],
                }
            )
    print(Pope.write_layout(Path(a.out) / "pope", rows))
    from mmeval.models.cobra import build_tiny_tokenizer

    build_tiny_tokenizer().save_pretrained(str(Path(a.out) / "tokenizer"))
    print(Path(a.out) / "tokenizer")


if __name__ == "__main__":
    main()
