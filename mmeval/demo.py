"""`make demo`: the harness end to end on this machine, with nothing to download.

Until the demo models land this runs the deterministic `mock` model on a generated POPE set in
lmms-lab's parquet layout: it shows the files a run writes, resuming, and rescoring.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> None:
    from PIL import Image

    from tasks.pope import Pope

    root = Path(".cache/demo")
    data = root / "data"
    if not (data / "pope").exists():
        rows = []
        for img in range(30):
            image = Image.new("RGB", (64, 64), ((37 * img) % 255, (91 * img) % 255, 120))
            for q, (cat, obj) in enumerate([("random", "cat"), ("popular", "dog"), ("adversarial", "car")]):
                rows.append({"question_id": str(img * 3 + q), "question": f"Is there a {obj} in the image?",
                             "answer": "yes" if (img + q) % 2 else "no", "image_source": f"demo_{img:04d}",
                             "image": image, "category": cat})
        Pope.write_layout(data / "pope", rows)
    out = root / "runs"
    cmd = [sys.executable, "-m", "mmeval", "run", "--model", "mock", "--tasks", "pope", "--data", str(data),
           "--output", str(out), "--run-name", "mock-demo"]
    print("$", " ".join(cmd[2:]).replace("-m mmeval", "mmeval"), flush=True)
    subprocess.run(cmd, check=True)
    print(f"\nper-sample log: {out}/mock-demo/pope.samples.jsonl\nresults:        {out}/mock-demo/pope.json")


if __name__ == "__main__":
    main()
