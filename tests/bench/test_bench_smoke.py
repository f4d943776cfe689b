"""`mmeval bench --tiny` runs end to end on the CPU (that it runs, not how fast)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from mmeval.cli import main


def test_bench_tiny_runs(tmp_path):
    out = tmp_path / "bench.json"
    r = CliRunner().invoke(main, ["bench", "--tiny", "--device", "cpu", "--models", "vl-mamba", "--out", str(out)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    report = json.loads(out.read_text())
    (m,) = report["models"]
    assert len(m["runs"]) == 7 and all(run["samples_per_s"] > 0 for run in m["runs"])
    # the fast path (prefix reuse, batching) answers exactly as the per-sample uncached loop does
    assert m["checks"]["pope_fast_vs_per_sample_loop"]["identical"]
    assert m["checks"]["pope_fast_vs_per_sample_loop"]["compared"] == 8
    assert report["lm_baselines"][0]["path"] == "ours" and report["lm_baselines"][0]["forward_seq_per_s"] > 0


def test_warmup_leaves_the_same_last_batch():
    from mmeval.benchmark.commands import warmup_images

    for images, questions, batch in ((200, 18, 64), (500, 18, 64), (3, 4, 4), (10, 18, 64), (7, 5, 16)):
        w = warmup_images(images, questions, batch)
        assert questions * w >= batch  # at least one full batch is captured
        assert (questions * w) % batch == (questions * images) % batch  # and the same partial one
