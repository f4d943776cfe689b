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
    # graph decoding checked against eager decoding (on the CPU both are eager: identical)
    assert m["checks"]["long_graphs_vs_eager"] == {"compared": 2, "same_text": 2, "same_choice": 2, "identical": True}
    # the table: targets beside the figures, the per-sample loop's from the same run
    table = r.output[r.output.index("Issue 18's targets"):]
    fast = next(x for x in m["runs"] if x["label"] == m["roles"]["pope_fast"])
    assert "| POPE-shaped, prefix reuse (q/s) " in table and ">= 1,000" in table
    assert f"{fast['samples_per_s']:,.1f} (missed), b4" in table  # a CPU is far from 1,000 q/s
    assert "| POPE: predictions == per-sample loop " in table and "8/8 text, 8/8 choice (met)" in table
    assert "| long answers b1: tokens == eager decoding " in table and "2/2 (met)" in table


def test_warmup_leaves_the_same_last_batch():
    from mmeval.benchmark.commands import warmup_images

    for images, questions, batch in ((200, 18, 64), (500, 18, 64), (3, 4, 4), (10, 18, 64), (7, 5, 16)):
        w = warmup_images(images, questions, batch)
        assert questions * w >= batch  # at least one full batch is captured
        assert (questions * w) % batch == (questions * images) % batch  # and the same partial one


def test_warmup_workloads_meet_every_batch_shape_of_the_timed_run():
    from mmeval.benchmark.commands import warmup_workloads

    for images, questions, batch in ((500, 18, 512), (500, 18, 64), (200, 18, 448), (3, 4, 4), (10, 18, 64)):
        runs = warmup_workloads(images, questions, batch)
        shapes = {min(batch, n - s) for _, n in runs for s in range(0, n, batch)}
        timed = {min(batch, images * questions - s) for s in range(0, images * questions, batch)}
        assert timed <= shapes  # the full batch and the timed run's last partial one are both met
        assert sum(n for _, n in runs) <= max(2 * batch, questions * images)  # and not many more questions
        assert all(n <= i * questions for i, n in runs)
