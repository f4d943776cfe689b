"""Differential: `mmeval score --protocol lmms-eval` on an lmms-eval `--log_samples` file gives the
metrics lmms-eval reported for it.

- the slow test runs lmms-eval 0.7.3 itself, offline on the CPU, on a 12-row POPE parquet in
  lmms-lab's columns, with mmeval's `mmeval_mock` model (a task folder whose yaml is the installed
  pope.yaml pointed at the local file; its utils are lmms-eval's own POPE functions), then rescores
  the samples file it wrote and compares with its `_results.json`;
- the quick test writes a log in exactly lmms-eval's line format, the per-metric values from
  lmms-eval's own `pope_process_results`, and compares with lmms-eval's own aggregation functions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmeval.cli import main
from tests.conftest import pope_rows
from tests.core.harness_files import SHORT_ANSWER, lmms_eval_line, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
# lmms-eval's metric names -> ours (lmms-eval reports fractions, we percentages)
METRICS = {"pope_accuracy": "accuracy", "pope_precision": "precision", "pope_recall": "recall",
           "pope_f1_score": "f1", "pope_yes_ratio": "yes_ratio"}


def rescore(tmp_path: Path, log: Path, data: Path) -> dict:
    out = tmp_path / "rescored.json"
    r = CliRunner().invoke(main, ["score", "--task", "pope", "--predictions", str(log), "--data", str(data),
                                  "--protocol", "lmms-eval", "--bootstrap", "0", "--output", str(out)])
    assert r.exit_code == 0, r.output
    return json.loads(out.read_text())


def test_log_in_lmms_evals_format_rescores_to_its_aggregates(pope_data, tmp_path):
    from lmms_eval.tasks.pope import utils as pope_utils

    rows = pope_rows()
    responses = ["Yes", "No.", "no", "yes", " No"]  # 5 against the labels period of 3
    lines, per_metric = [], {m: [] for m in METRICS}
    for i, row in enumerate(rows):
        doc = {k: row[k] for k in ("question_id", "question", "answer", "category")}
        response = responses[i % len(responses)]
        values = pope_utils.pope_process_results(doc, [response])
        for m in METRICS:
            per_metric[m].append(values[m])
        lines.append(lmms_eval_line(i, str(doc["answer"]), response, values,
                                    pope_utils.pope_doc_to_text(doc, {"pre_prompt": "", "post_prompt": SHORT_ANSWER})))
    log = write_jsonl(tmp_path / "20261202_194403_samples_pope.jsonl", lines, ensure_ascii=False)
    got = rescore(tmp_path, log, pope_data)
    for theirs, ours in METRICS.items():
        expected = 100 * getattr(pope_utils, f"pope_aggregate_{theirs.removeprefix('pope_')}")(per_metric[theirs])
        assert got["metrics"][ours] == pytest.approx(expected), theirs
    assert 0 < got["metrics"]["accuracy"] < 100


def _plugin_site(root: Path) -> Path:
    """A minimal installed-distribution record declaring mmeval's lmms_eval.models entry point, so the
    subprocess finds `mmeval_mock` however mmeval is installed (as tests/integrations/test_lmms_eval_plugin.py)."""
    dist = root / "mmeval_lmms_rescore_test-0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mmeval-lmms-rescore-test\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text(
        "[lmms_eval.models]\nmmeval = mmeval.integrations.lmms_eval_models:lmms_eval_manifests\n")
    return root


def _pope_parquet(path: Path) -> None:
    """12 POPE rows in lmms-lab's columns, images as `datasets.Image()` (decoded, as the hub copy)."""
    import datasets
    from PIL import Image

    questions = [("Is there a cat in the image?", "yes"), ("Is there a dog in the image?", "no"),
                 ("Is there a car in the image?", "no"), ("Is there a person in the image?", "yes")]
    rows = []
    for c, category in enumerate(("adversarial", "popular", "random")):
        for k, (q, a) in enumerate(questions):
            rows.append({"question_id": str(k + 1), "question": q, "answer": a,
                         "image_source": f"COCO_val2014_{k:012d}", "category": category,
                         "image": Image.new("RGB", (32, 24), (40 * k, 80 * c, 30))})
    features = datasets.Features({"question_id": datasets.Value("string"), "question": datasets.Value("string"),
                                  "answer": datasets.Value("string"), "image_source": datasets.Value("string"),
                                  "image": datasets.Image(), "category": datasets.Value("string")})
    path.parent.mkdir(parents=True)
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(path))


@pytest.mark.slow
def test_lmms_eval_run_rescored_to_what_it_reported(tmp_path):
    import lmms_eval

    parquet = tmp_path / "data" / "pope" / "data" / "test-00000-of-00001.parquet"
    _pope_parquet(parquet)
    task_dir = tmp_path / "tasks" / "pope_local"
    task_dir.mkdir(parents=True)
    installed = (Path(lmms_eval.__file__).parent / "tasks" / "pope" / "pope.yaml").read_text()
    head, rest = installed.split('task: "pope"\n', 1)
    assert head.startswith("dataset_path: "), head  # the hub id and its kwargs, replaced by the local file
    (task_dir / "pope_local.yaml").write_text(
        f"dataset_path: parquet\ndataset_kwargs:\n  data_files:\n    test: {parquet}\ntask: \"pope_local\"\n{rest}")
    (task_dir / "utils.py").write_text("from lmms_eval.tasks.pope.utils import *  # noqa: F401,F403\n")

    site = _plugin_site(tmp_path / "site")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1",
               HF_HOME=str(tmp_path / "hf"),
               PYTHONPATH=os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "out"
    # answers with "No." and "yes": lmms-eval's exact match counts "No." neither right nor as a no
    cmd = [sys.executable, "-m", "lmms_eval", "--model", "mmeval_mock", "--model_args", "seed=7,answers=Yes|No|yes|No.",
           "--tasks", "pope_local", "--include_path", str(tmp_path / "tasks"), "--batch_size", "4", "--device", "cpu",
           "--log_samples", "--output_path", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (log,) = out.rglob("*_samples_pope_local.jsonl")
    (results,) = out.rglob("*_results.json")
    reported = json.loads(results.read_text())["results"]["pope_local"]

    got = rescore(tmp_path, log, tmp_path / "data")
    assert got["n"] == 12 and got["coverage"] == {"predictions": 12, "docs": 12}
    for theirs, ours in METRICS.items():
        assert got["metrics"][ours] == pytest.approx(100 * reported[f"{theirs},none"]), theirs
    responses = {json.loads(line)["filtered_resps"] for line in log.read_text().splitlines()}
    assert "No." in responses and 0 < got["metrics"]["accuracy"] < 100  # the answers discriminate
