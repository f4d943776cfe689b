"""`mmeval report html`: the page's data (tables, grids, bars, samples) from fixture result files, its
words for bad input, and the page itself loaded in headless Chromium (the JS-built parts included)."""

from __future__ import annotations

import base64
import html as _html
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmeval.report import html as report_html
from mmeval.report.commands import report
from mmeval.report.html import (
    DocImages,
    ReportInputs,
    build_report,
    category_charts,
    outcome_of,
    pick_samples,
    sample_browser_data,
)
from mmeval.report.loading import load_results, load_samples
from mmeval.report.paper_table import paper_table
from mmeval.types import ImageRef
from tests.report._report_helpers import binary_samples, write_task

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _png(path: Path, colour=(200, 30, 30), size=(40, 30)) -> Path:
    from PIL import Image

    Image.new("RGB", size, colour).save(path)
    return path


def _decoded_size(uri: str) -> tuple[int, int]:
    from PIL import Image

    assert uri.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).size


# --------------------------------------------------------------------------- paper tables
def _rows_of(page: str, table_class: str) -> list[str]:
    table = page[page.index(f'<table class="{table_class}">'):]
    return re.findall(r"<tr[^>]*>.*?</tr>", table[:table.index("</table>")])


def test_paper_table_shows_printed_rows_then_measured_cells_with_intervals_and_marks(tmp_path):
    res = tmp_path / "results"
    write_task(res, "vlm_a", "pope", headline="f1", metrics={"f1": 85.34}, ci95={"f1": [84.12, 86.44]})
    write_task(res, "vlm_a", "gqa", metrics={"accuracy": 56.07})  # no interval recorded
    pt = paper_table("vl-mamba", res)
    page = report_html.paper_table_html(pt)
    rows = _rows_of(page, "t paper")
    assert len(rows) == 1 + len(pt.rows)  # header + one per row
    published = next(r for r in rows if "<td>VL-Mamba</td>" in r)
    assert ">84.4<" in published and 'class="ci"' not in published  # as printed, no interval
    (measured,) = [r for r in rows if 'class="measured' in r]
    assert "<td>vl-mamba</td>" in measured and "measured here" in measured
    # the value, its mark and its interval; GQA without one
    assert re.search(r'>85\.3<sup class="mark">†\d+</sup><span class="ci">\[84\.1, 86\.4\]</span>', measured)
    assert re.search(r'>56\.1<sup class="mark">†\d+</sup></td>', measured)
    # these result files record no data source: every measured cell is marked, its footnote listed
    # under the table and shown on the cell
    assert pt.footnotes and all(f"{n}</li>" in page for n in pt.footnotes)
    assert f'title="{_html.escape(pt.footnotes[0])}"' in measured
    assert any("data source not recorded" in n for n in pt.footnotes)


def test_every_paper_version_is_on_the_page_and_no_run_is_said():
    from mmeval.report.published import MAIN_TABLES

    page = report_html.papers_html(None, None)
    n_tables = sum(len(v) for v in MAIN_TABLES.values())
    assert page.count('class="t paper"') == n_tables >= 3  # VL-Mamba, Cobra v4 and v1
    assert page.count("No measured row: no run has any of this table") == n_tables


def test_paper_ablation_rows_get_our_run_of_their_configuration(tmp_path):
    res = tmp_path / "results"
    args = {"encoder": "clip", "mmc": "mlp", "llm": "mamba-1.4b"}  # VL-Mamba Table 2, first row
    write_task(res, "vlm_14b", "pope", headline="f1", metrics={"f1": 83.21}, ci95={"f1": [82.0, 84.4]}, args=args)
    page = report_html.paper_ablations_html(res, None)
    blocks = re.findall(r"<details( open)?><summary>(.*?)</summary>(.*?)</details>", page, re.S)
    opened = [b for b in blocks if b[0]]
    assert len(opened) == 1 and "Table 2" in opened[0][1] and "1 measured row(s)" in opened[0][1]
    assert all("no run matches a configuration" in b[1] for b in blocks if not b[0])
    rows = re.findall(r"<tr[^>]*>.*?</tr>", opened[0][2])
    i = next(k for k, r in enumerate(rows) if 'class="measured' in r)
    assert "<td>mamba-1.4b</td>" in rows[i - 1] and ">84.5<" in rows[i - 1]  # the paper's row above ours
    assert re.search(r'>83\.2(<sup class="mark">†\d+</sup>)?<span class="ci">\[82\.0, 84\.4\]</span>', rows[i])
    assert "vlm_14b" in rows[i]


# --------------------------------------------------------------------------- per-category bars
def test_category_charts_read_both_key_spellings_and_their_intervals(tmp_path):
    res = tmp_path / "results"
    write_task(res, "a", "pope", headline="f1",
               metrics={"f1": 80.0, "random/f1": 90.0, "popular/f1": 70.0, "random/accuracy": 91.0,
                        "popular/accuracy": 72.0},
               ci95={"f1": [75.0, 85.0], "random/f1": [85.5, 94.5]})
    write_task(res, "b", "pope", headline="f1", metrics={"random/f1": 60.0, "popular/f1": 50.0})
    write_task(res, "a", "mmbench", headline="circular_accuracy",
               metrics={"circular_accuracy": 40.0, "category/ocr": 30.0, "category/counting": 50.0,
                        "l2/perception": 45.0})
    by_task = {}
    for r in load_results(res):
        by_task.setdefault(r.task, []).append(r)
    pope = category_charts(sorted(by_task["pope"], key=lambda r: r.run))
    assert [c.name for c in pope] == ["f1", "accuracy"]  # the headline first
    f1 = pope[0]
    assert f1.categories == ["random", "popular"]
    assert [s.run for s in f1.series] == ["a", "b"]
    assert f1.series[0].values == {"random": 90.0, "popular": 70.0}
    assert f1.series[0].ci == {"random": (85.5, 94.5)} and f1.series[1].ci == {}
    mmb = {c.name: c for c in category_charts(by_task["mmbench"])}
    assert set(mmb) == {"category", "l2"}
    assert mmb["category"].categories == ["ocr", "counting"]
    assert mmb["category"].series[0].values == {"ocr": 30.0, "counting": 50.0}
    section = report_html._category_section(by_task["pope"], {"a": "#111111", "b": "#222222"})
    # the bar is 90% of the 0..100 axis wide; the whisker spans 85.5..94.5
    assert "width:90.00%;background:#111111" in section
    assert "left:85.50%;width:9.00%" in section and "[85.5, 94.5]" in section


def test_scatter_ticks_are_round_and_printed_exactly():
    assert report_html._ticks(45, 58) == ([45, 50, 55, 60], 0)
    assert report_html._ticks(50, 60) == ([50, 52.5, 55, 57.5, 60], 1)  # 52.5 is not printed as "52"
    svg = report_html.scatter_svg([(100.0, 50.0, "a", "#111111"), (400.0, 57.0, "b", "#222222")], "samples/s", "f1")
    assert ">52.5</text>" in svg and ">100</text>" in svg and ">400</text>" in svg
    xs = [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', svg)]
    assert xs[0] < xs[1]  # the faster run is to the right
    twins = report_html.scatter_svg([(5.0, 50.0, "run_a", "#111"), (5.0, 50.0, "run_b", "#222")], "x", "y")
    baselines = re.findall(r'<text x="[\d.]+" y="([\d.]+)" text-anchor="\w+">run_', twins)
    assert len(set(baselines)) == 2  # labels of coinciding points do not overlap


# --------------------------------------------------------------------------- ablation grids
def test_ablation_grid_colours_each_benchmark_and_bolds_the_best(tmp_path):
    res = tmp_path / "results"
    for run, enc, pope, gqa in (("r1", "clip", 80.0, 50.0), ("r2", "siglip", 85.0, 40.0), ("r3", "dino", 82.0, 45.0)):
        args = {"encoder": enc, "checkpoint": f"/ckpt/{run}"}  # the path differs too; it is not an axis
        write_task(res, run, "pope", headline="f1", metrics={"f1": pope}, args=args)
        write_task(res, run, "gqa", metrics={"accuracy": gqa}, args=args)
    groups, messages = report_html.ablation_groups(load_results(res))
    assert messages == [] and len(groups) == 1 and groups[0].grid.axes == ["encoder"]
    page = report_html._ablation_html(groups[0])
    darkest, palest = report_html._shade(1.0)[0], report_html._shade(0.0)[0]
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr><td>(\w+)</td>.*?</tr>", page)}
    # per benchmark: siglip has the best POPE (dark, bold) and the worst GQA (pale)
    assert re.search(rf'background:{darkest}[^>]*><strong>85.0</strong>', rows["siglip"])
    assert re.search(rf'background:{palest}[^>]*>40.0<', rows["siglip"])
    assert re.search(rf'background:{darkest}[^>]*><strong>50.0</strong>', rows["clip"])


def test_runs_of_different_models_without_a_baseline_are_said_in_words(tmp_path):
    res = tmp_path / "results"
    write_task(res, "vl_run", "pope", headline="f1", metrics={"f1": 80.0}, model="vl-mamba")
    write_task(res, "cobra_run", "pope", protocol="prismatic", metrics={"accuracy": 85.0}, model="cobra")
    groups, messages = report_html.ablation_groups(load_results(res))
    assert groups == []
    assert len(messages) == 1 and "different models" in messages[0]
    assert "cobra: cobra_run" in messages[0] and "vl-mamba: vl_run" in messages[0]
    page = build_report(ReportInputs(results=res))
    assert "different models" in page and 'class="t grid"' not in page


def test_a_folder_without_runs_is_said_in_words(tmp_path):
    empty = tmp_path / "results"
    empty.mkdir()
    page = build_report(ReportInputs(results=empty))
    assert f"No runs under {empty}" in page
    assert "No measured row: no run has any of this table" in page
    assert "No runs: there is nothing to pivot." in page and "No samples to browse" in page
    assert 'class="t grid"' not in page
    assert "<svg" not in page
    assert 'class="sample-card' not in page
    missing = build_report(ReportInputs(results=tmp_path / "nowhere"))
    assert f"The results folder {tmp_path / 'nowhere'} does not exist" in missing


# --------------------------------------------------------------------------- samples
def test_outcomes_and_round_robin_pick():
    assert outcome_of({"correct": 1.0}) == ("right", 1.0)
    assert outcome_of({"correct": 0}) == ("wrong", 0.0)
    assert outcome_of({"correct": 0.6}) == ("partial", 0.6)
    assert outcome_of({}) == ("unscored", None)
    samples = [{"doc_id": str(i), "scores": {"category": "a" if i < 8 else "b", "correct": float(i % 4 == 0)}}
               for i in range(10)]
    picked = pick_samples(samples, 4)
    # four groups (a right, a wrong, b right, b wrong): one of each, in file order within a group
    assert [s["doc_id"] for s in picked] == ["0", "1", "8", "9"]
    assert len(pick_samples(samples, 100)) == 10


def test_samples_embed_thumbnails_and_name_a_missing_image(tmp_path, monkeypatch):
    res = tmp_path / "results"
    samples = binary_samples([1, 0, 1])
    samples[1]["candidate_probs"] = {"Yes": 0.25, "No": 0.75}
    samples[2]["prompt"] = "</script><script>document.title='owned'</script>"
    write_task(res, "r", "pope", headline="accuracy", metrics={"accuracy": 66.7}, samples=samples)
    big = _png(tmp_path / "big.png", size=(900, 600))
    gone = tmp_path / "gone.png"
    refs = {"d0": (ImageRef(source="pope d0", path=str(big)),),
            "d1": (ImageRef(source="pope d1", path=str(gone)),),
            "d2": (ImageRef(source="pope d2", path=str(big)),)}
    monkeypatch.setattr(report_html, "load_doc_images", lambda r, data, task_args: DocImages(refs, "images from x"))
    data = sample_browser_data(load_results(res), per_task=10)
    by_id = {s["doc_id"]: s for s in data["samples"]}
    assert by_id["d0"]["image"] == by_id["d2"]["image"]  # one picture, embedded once
    assert len(data["images"]) == 1
    w, h = _decoded_size(data["images"][by_id["d0"]["image"]])
    assert max(w, h) == report_html.THUMB_PX and abs(w / h - 1.5) < 0.02
    assert by_id["d1"]["image"] is None and by_id["d1"]["image_status"] == "missing"
    assert by_id["d1"]["image_path"] == str(gone)
    assert by_id["d1"]["candidate_probs"] == {"Yes": 0.25, "No": 0.75}
    assert [by_id[d]["outcome"] for d in ("d0", "d1", "d2")] == ["right", "wrong", "right"]
    assert data["files"] == [{"run": "r", "task": "pope", "total": 3, "shown": 3, "note": "images from x"}]
    page = build_report(ReportInputs(results=res))
    assert page.count("</script>") == 2  # the prompt's '</script>' cannot close the data block
    assert "\\u003c/script>" in page


def test_sample_cap_and_no_data_recorded(tmp_path):
    res = tmp_path / "results"
    write_task(res, "r", "pope", headline="accuracy", metrics={"accuracy": 50.0}, samples=binary_samples([1, 0] * 20))
    data = sample_browser_data(load_results(res), per_task=5)
    assert len(data["samples"]) == 5 and data["files"][0]["total"] == 40 and data["files"][0]["shown"] == 5
    assert all(s["image"] is None for s in data["samples"])
    assert "do not record where pope's data is (pass --data DIR)" in data["files"][0]["note"]


def test_images_from_the_recorded_data_source(tmp_path, pope_data):
    """A result file's data.source (the data provenance contract) is where the images come from."""
    import json

    res = tmp_path / "results"
    p = write_task(res, "r", "pope", headline="accuracy", metrics={"accuracy": 50.0},
                   samples=[{"doc_id": "random/0", "prompt": "q", "prediction": "yes", "target": "no",
                             "scores": {"category": "random", "correct": 0.0}}])
    rec = json.loads(p.read_text())
    rec["data"] = {"layout": "lmms-lab-parquet", "version": "synthetic", "split": "test",
                   "source": str(pope_data / "pope")}
    p.write_text(json.dumps(rec))
    data = sample_browser_data(load_results(res), per_task=5)
    (s,) = data["samples"]
    assert s["image"] is not None and data["images"][s["image"]].startswith("data:image/jpeg;base64,")
    assert data["files"][0]["note"] == f"images from {pope_data / 'pope'}"


# --------------------------------------------------------------------------- the command
def test_cli_writes_the_page_and_rejects_a_missing_data_folder(tmp_path):
    res = tmp_path / "results"
    write_task(res, "r", "pope", headline="f1", metrics={"f1": 80.0}, samples=binary_samples([1, 0]))
    out = tmp_path / "reports"
    r = CliRunner().invoke(report, ["html", "--results", str(res), "--out", str(out)])
    assert r.exit_code == 0, r.output
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and 'id="samples"' in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing loaded from a network
    assert "<link" not in page and "@import" not in page
    r = CliRunner().invoke(report, ["html", "--results", str(res), "--out", str(out), "--data", str(tmp_path / "no")])
    assert r.exit_code == 2 and f"--data {tmp_path / 'no'}: no such directory" in r.output
    r = CliRunner().invoke(report, ["html", "--results", str(tmp_path / "none"), "--out", str(out)])
    assert r.exit_code == 0 and "does not exist" in (out / "report.html").read_text()


# --------------------------------------------------------------------------- in a real browser
def chromium() -> str:
    exe = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        pytest.fail("chromium is needed for the HTML report test and was not found: install it with "
                    "`apt-get install -y --no-install-recommends chromium` (Debian; .ci/run does this) "
                    "or point CHROMIUM=/path/to/chrome at a Chrome/Chromium binary")
    return exe


def run_chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    r = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def test_page_from_fixture_files_in_chromium(tmp_path, monkeypatch):
    """The quick browser check (runs in `make test`): every section is in the DOM Chromium built,
    the JS sample browser applied the address's filters, and a screenshot is written."""
    res = tmp_path / "results"
    for run, enc, correct in (("vlm_clip", "clip", [1, 0, 1, 1]), ("vlm_siglip", "siglip", [0, 0, 1, 0])):
        samples = binary_samples(correct)
        for i, smp in enumerate(samples):
            smp["scores"]["category"] = ("random", "popular")[i % 2]
        f1 = 25.0 * sum(correct)
        write_task(res, run, "pope", headline="f1", args={"encoder": enc}, samples=samples,
                   metrics={"f1": f1, "random/f1": f1 + 5, "popular/f1": f1 - 5}, ci95={"f1": [f1 - 9, f1 + 9]})
        write_task(res, run, "gqa", metrics={"accuracy": 40.0 + len(run)}, args={"encoder": enc})
    picture = _png(tmp_path / "p.png", size=(64, 48))
    refs = {f"d{i}": (ImageRef(source=f"pope d{i}", path=str(picture if i else tmp_path / "gone.png")),)
            for i in range(4)}
    monkeypatch.setattr(report_html, "load_doc_images", lambda r, data, task_args: DocImages(refs, "images"))
    page = report_html.write_report(ReportInputs(results=res), tmp_path / "reports")
    dom = run_chromium(["--dump-dom", page.as_uri() + "?run=vlm_siglip&outcome=wrong"], tmp_path / "profile").stdout
    assert 'data-js="ready"' in dom
    for section in ("papers", "ablation", "categories", "efficiency", "samples"):
        assert f'<section class="report" id="{section}">' in dom, section
    assert dom.count('class="t paper"') >= 3 and 'class="t grid"' in dom and "<svg" in dom
    cards = re.findall(r'<div class="sample-card (\w+)" data-task="(\w+)" data-outcome="(\w+)" '
                       r'data-category="(\w+)" data-run="(\w+)"', dom)
    assert sorted(c[3] for c in cards) == ["popular", "popular", "random"]  # siglip's wrong ones: d0, d1, d3
    assert {(c[0], c[1], c[2], c[4]) for c in cards} == {("wrong", "pope", "wrong", "vlm_siglip")}
    assert "Showing 3 of 3 matching samples (8 embedded)." in dom
    assert dom.count('<img src="data:image/jpeg;base64,') == 2
    assert "<strong>missing</strong>" in dom and _html.escape(str(tmp_path / "gone.png")) in dom
    shot = tmp_path / "report.png"
    run_chromium([f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri()], tmp_path / "profile")
    assert shot.stat().st_size > 20_000


@pytest.mark.slow
def test_page_renders_in_headless_chromium(tmp_path, monkeypatch):
    """Mock model on synthetic data -> page -> Chromium: every section rendered, the JS-built sample
    browser honours the address's filters, thumbnails decode, a missing image is named, screenshot saved."""
    from mmeval.cli import main
    from mmeval.synth.benchmarks import write_benchmarks

    data, runs = tmp_path / "synth", tmp_path / "runs"
    tasks = ("pope", "vsr", "mme", "mmbench", "gqa")
    write_benchmarks(data, seed=1, counts=6, tasks=tasks)
    # two seeds under each task's default protocol (VSR's is prismatic: candidate probabilities), and
    # Cobra's protocol on its tasks
    plan = (("mock_s0", 0, [], tasks), ("mock_s1", 1, [], tasks),
            ("mock_prism", 2, ["--protocol", "prismatic"], ("pope", "vsr", "gqa")))
    for name, seed, protocol, which in plan:
        r = CliRunner().invoke(main, ["run", "--model", "mock", "--model-args", f"seed={seed}", "--tasks",
                                      ",".join(which), *protocol, "--data", str(data), "--output", str(runs),
                                      "--run-name", name, "--no-progress", "--bootstrap", "50"])
        assert r.exit_code == 0, r.output
    # one picture goes missing after the run: the page names it instead of breaking
    real = report_html.load_doc_images

    def losing_one(r, data_dir, task_args):
        found = real(r, data_dir, task_args)
        if r.task == "gqa" and found.refs:
            first = sorted(found.refs)[0]
            found.refs[first] = (ImageRef(source="gqa gone", path=str(tmp_path / "gone.jpg")),)
        return found

    monkeypatch.setattr(report_html, "load_doc_images", losing_one)
    out = tmp_path / "reports"
    page = report_html.write_report(ReportInputs(results=runs, data=data, per_task=6), out)

    profile = tmp_path / "profile"
    dom = run_chromium(["--dump-dom", page.as_uri()], profile).stdout
    assert 'data-js="ready"' in dom  # the script ran to its end
    for section in ("papers", "ablation", "categories", "efficiency", "samples"):
        assert f'<section class="report" id="{section}">' in dom, section
    assert dom.count('class="t paper"') >= 3 and 'class="t grid"' in dom
    assert dom.count('class="chart-card"') >= 3 and "<svg" in dom
    cards = re.findall(r'<div class="sample-card (\w+)" data-task="(\w+)" data-outcome="(\w+)"', dom)
    n_samples = sum(min(6, len(load_samples(r.samples_path))) for r in load_results(runs))
    assert n_samples > 60
    assert len(cards) == 60  # the first page of the browser
    assert f"Showing 60 of {n_samples} matching samples ({n_samples} embedded)." in dom
    assert dom.count('<img src="data:image/jpeg;base64,') >= 50

    filtered = run_chromium(["--dump-dom", page.as_uri() + "?task=gqa&run=mock_s0"], profile).stdout
    cards = re.findall(r'<div class="sample-card (\w+)" data-task="(\w+)" data-outcome="(\w+)"', filtered)
    assert len(cards) == 6 and {c[1] for c in cards} == {"gqa"}
    assert "Showing 6 of 6 matching samples" in filtered
    assert _html.escape(str(tmp_path / "gone.jpg")) in filtered and "<strong>missing</strong>" in filtered
    wrong = run_chromium(["--dump-dom", page.as_uri() + "?task=vsr&outcome=wrong"], profile).stdout
    cards = re.findall(r'<div class="sample-card (\w+)" data-task="(\w+)" data-outcome="(\w+)"', wrong)
    assert cards and all(c[1] == "vsr" and c[2] == "wrong" for c in cards)
    assert 'class="probs"' in wrong  # VSR under prismatic scores candidates: their probabilities are shown

    shot = tmp_path / "report.png"
    # the whole page, with the browser filtered to a few VSR cards (image, candidates' probabilities)
    run_chromium([f"--screenshot={shot}", "--window-size=1400,6600", page.as_uri() + "?task=vsr&run=mock_s0"],
                 profile)
    from PIL import Image, ImageStat

    img = Image.open(shot)
    assert img.size == (1400, 6600)
    assert max(ImageStat.Stat(img.convert("L")).stddev) > 20  # not a blank page
    if os.environ.get("MMEVAL_REPORT_SCREENSHOT"):
        shutil.copy(shot, os.environ["MMEVAL_REPORT_SCREENSHOT"])
