"""A problem with one sample fails that sample, not the run; a disk that fills up mid-run is one line,
exit 2, and the same command resumes once there is space, with the metrics of an uninterrupted run.

The full disk is a real tmpfs of a few KiB where this machine lets the tests mount one (root with
CAP_SYS_ADMIN), and always also a simulated one: the samples file's writes fail with ENOSPC once a
byte budget is spent, after writing the part that fits (a torn last line, as on a real disk)."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

import mmeval.results
from mmeval.errors import RunError
from mmeval.results import SamplesLog, write_json_atomic
from mmeval.types import Prediction, Request, SampleRecord
from mmeval.validation import generate_checked
from tests.reliability.helpers import (
    can_mount,
    cli,
    last_error_line,
    mock_run,
    pope_data,
    resize_tmpfs,
    tmpfs,
    write_valid_layouts,
)

N_POPE = 60


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return pope_data(tmp_path_factory.mktemp("data"), n_images=20, per_image=3)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> dict:
    """The results of an uninterrupted run, to compare resumed runs with."""
    out = tmp_path_factory.mktemp("reference")
    r = mock_run(data, out, "pope", "--batch-size", "4")
    assert r.exit_code == 0, r.output
    return json.loads(next(out.rglob("pope.json")).read_text())


def samples_lines(out: Path, task: str = "pope") -> list[dict]:
    return [json.loads(x) for x in next(out.rglob(f"{task}.samples.jsonl")).read_bytes().decode().splitlines()]


# ----------------------------------------------------------------------------------- one bad code point
def vsr_with_caption(root: Path, tmp_path: Path, line: int, text: str) -> Path:
    shutil.copytree(root / "vsr", tmp_path / "vsr")
    jsonl = tmp_path / "vsr" / "test.jsonl"
    rows = jsonl.read_text().splitlines()
    row = json.loads(rows[line])
    row["caption"] = text + row["caption"]
    rows[line] = json.dumps(row)  # ensure_ascii: the lone surrogate is written as the escape \ud800
    jsonl.write_text("\n".join(rows) + "\n")
    return tmp_path


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> Path:
    return write_valid_layouts(tmp_path_factory.mktemp("layouts"), n=6)


def test_invalid_code_point_in_a_vsr_caption_fails_that_sample_only(layouts, tmp_path):
    """`\\ud800` in one caption once aborted the whole run with a traceback (it cannot be encoded)."""
    data = vsr_with_caption(layouts, tmp_path, 2, "\ud800 ")
    out = tmp_path / "out"
    r = mock_run(data, out, "vsr")
    assert r.exit_code == 3 and "Traceback" not in r.output, r.output
    last = r.output.strip().splitlines()[-1]
    assert last == "error: 1 sample(s) failed (see the samples files); metrics exclude them"
    lines = samples_lines(out, "vsr")  # the file is UTF-8 and every line JSON
    assert len(lines) == 6
    bad = [x for x in lines if x["error"]]
    assert [x["doc_id"] for x in bad] == ["2"]
    assert bad[0]["error"].startswith("prompt is not valid text (surrogates not allowed: '\\ud800' at character ")
    assert "\ud800" in bad[0]["prompt"]  # read back as it was
    res = json.loads(next(out.rglob("vsr.json")).read_text())
    assert (res["n"], res["n_errors"]) == (5, 1)
    # the run's samples file rescored: the failed sample counted as failed, the others as in the run
    r = cli("score", "--task", "vsr", "--predictions", next(out.rglob("vsr.samples.jsonl")), "--data", data,
            "--protocol", "prismatic", "--bootstrap", "0", "--output", tmp_path / "rescored.json")
    assert r.exit_code == 0, r.output
    rescored = json.loads((tmp_path / "rescored.json").read_text())
    assert (rescored["n"], rescored["n_errors"], rescored["metrics"]) == (5, 1, res["metrics"])
    # a re-run asks for the failed sample again (it fails again), the others are done
    r = mock_run(data, out, "vsr")
    assert r.exit_code == 3 and "5 already done, 1 to go" in r.output, r.output


def test_valid_non_ascii_text_is_untouched(layouts, tmp_path):
    data = vsr_with_caption(layouts, tmp_path, 1, "Ça, 東京 😀 ")
    out = tmp_path / "out"
    assert mock_run(data, out, "vsr").exit_code == 0
    prompt = next(x for x in samples_lines(out, "vsr") if x["doc_id"] == "1")["prompt"]
    assert "Ça, 東京 😀 " in prompt
    assert "Ça, 東京 😀".encode() in next(out.rglob("vsr.samples.jsonl")).read_bytes()  # written as UTF-8


class _CountingAdapter:
    name = "counting"

    def __init__(self, drop: int = 0):
        self.asked, self.drop = [], drop

    def generate(self, requests):
        self.asked.append([r.doc_id for r in requests])
        return [Prediction(text="yes") for _ in requests[self.drop:]]


def test_generate_checked_asks_only_what_can_be_asked():
    adapter = _CountingAdapter()
    reqs = [Request("a", "fine"), Request("b", "bad \udcff"), Request("c", "fine too")]
    preds = generate_checked(adapter, reqs)
    assert adapter.asked == [["a", "c"]]
    assert [p.text for p in preds] == ["yes", "", "yes"] and preds[1].error.startswith("prompt is not valid text")
    assert generate_checked(adapter, [reqs[1]])[0].error and adapter.asked == [["a", "c"]]  # nothing asked
    with pytest.raises(RunError, match="model counting returned 1 predictions for 2 requests"):
        generate_checked(_CountingAdapter(drop=1), [reqs[0], reqs[2]])


@pytest.mark.parametrize("line", [b'{"doc_id": "p\xe9"}', b"[1, 2]", b'"text"', b'{"prompt": "no doc_id"}'])
def test_a_corrupt_samples_file_is_one_line_on_resume(data, tmp_path, line):
    out = tmp_path / "out"
    assert mock_run(data, out, "pope", "--limit", "4").exit_code == 0
    samples = next(out.rglob("pope.samples.jsonl"))
    samples.write_bytes(samples.read_bytes() + line + b"\n")
    assert last_error_line(mock_run(data, out, "pope")).startswith(f"error: {samples}:5: corrupt sample line (")


def test_samples_log_round_trips_invalid_code_points(tmp_path):
    log = SamplesLog(tmp_path / "t.samples.jsonl")
    rec = SampleRecord("x", "a \ud800 b \\ud800", "", None, {}, error="e")
    log.append([rec])
    log.close()
    (tmp_path / "t.samples.jsonl").read_bytes().decode("utf-8")  # valid UTF-8
    assert SamplesLog(tmp_path / "t.samples.jsonl").read()["x"] == rec


# ------------------------------------------------------------------------------------------- full disk
class _DiskFull:
    """Writes to files named `*.samples.jsonl` succeed until `budget` bytes, then write what fits and
    fail with ENOSPC (as a full disk does); every other file is written normally."""

    def __init__(self, budget: int):
        self.budget, self.real_open = budget, open

    def __call__(self, file, mode="r", *args, **kwargs):
        fh = self.real_open(file, mode, *args, **kwargs)
        return _Limited(fh, self) if str(file).endswith(".samples.jsonl") and "a" in mode else fh


class _Limited:
    def __init__(self, fh, disk: _DiskFull):
        self.fh, self.disk = fh, disk

    def write(self, text: str) -> int:
        if len(text) > self.disk.budget:
            self.fh.write(text[: self.disk.budget])
            self.fh.flush()
            self.disk.budget = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.disk.budget -= len(text)
        return self.fh.write(text)

    def __getattr__(self, name):
        return getattr(self.fh, name)


FULL_DISK = ["simulated"] + (["tmpfs"] if can_mount() else [])


@pytest.mark.parametrize("disk", FULL_DISK)
def test_full_disk_mid_run_is_one_line_and_the_run_resumes(data, reference, tmp_path, monkeypatch, disk):
    out = tmp_path / "disk"
    if disk == "tmpfs":
        # run.json, the samples identity record and the lock file take a page each; the samples file gets
        # two pages (~27 of 60 lines)
        with tmpfs(out, "20k"):
            r = mock_run(data, out, "pope", "--batch-size", "4")
            line = last_error_line(r)
            on_disk = next(out.rglob("pope.samples.jsonl")).read_bytes()
            assert not list(out.rglob("pope.json"))
            resize_tmpfs(out, "1m")  # space freed
            resumed = mock_run(data, out, "pope", "--batch-size", "4")
            final = json.loads(next(out.rglob("pope.json")).read_text())
            lines = samples_lines(out)
    else:
        monkeypatch.setattr(mmeval.results, "open", _DiskFull(budget=9000), raising=False)
        r = mock_run(data, out, "pope", "--batch-size", "4")
        line = last_error_line(r)
        on_disk = next(out.rglob("pope.samples.jsonl")).read_bytes()
        assert not list(out.rglob("pope.json"))
        monkeypatch.undo()  # space freed
        resumed = mock_run(data, out, "pope", "--batch-size", "4")
        final = json.loads(next(out.rglob("pope.json")).read_text())
        lines = samples_lines(out)
    assert line.startswith("error: ") and line.endswith(
        "pope.samples.jsonl: cannot write the samples log (No space left on device); the samples written so far "
        "are kept: fix that and re-run the same command to resume")
    assert not on_disk.endswith(b"\n")  # the disk filled mid-line: a torn last line
    done = on_disk.count(b"\n")
    assert 0 < done < N_POPE
    assert resumed.exit_code == 0, resumed.output
    assert f"{done} already done, {N_POPE - done} to go" in resumed.output
    assert sorted(x["doc_id"] for x in lines) == sorted({x["doc_id"] for x in lines}) and len(lines) == N_POPE
    assert (final["n"], final["n_errors"], final["metrics"]) == (reference["n"], 0, reference["metrics"])


def test_a_results_file_that_cannot_be_written_is_one_line(tmp_path, monkeypatch):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(mmeval.results.os, "fsync", full)
    (tmp_path / "r.json").write_text('{"old": 1}')
    with pytest.raises(RunError, match=r"r.json: cannot write \(No space left on device\)$"):
        write_json_atomic(tmp_path / "r.json", {"new": 2})
    assert json.loads((tmp_path / "r.json").read_text()) == {"old": 1}  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunError, match=r"file/r.json: cannot write \(a file is where its folder should be\)$"):
        write_json_atomic(blocker / "r.json", {})


@pytest.mark.parametrize("filename, says", [(None, "error: a write failed: No space left on device"),
                                            ("/x/y", "error: /x/y: Read-only file system")])
def test_a_disk_error_no_check_converted_is_still_one_line(data, tmp_path, monkeypatch, filename, says):
    """The CLI's last net: ENOSPC, EDQUOT or EROFS from anywhere is one line and exit 2."""
    import mmeval.runner

    def full(self, *a, **k):
        code = errno.ENOSPC if filename is None else errno.EROFS
        raise OSError(code, os.strerror(code), *([filename] if filename else []))

    monkeypatch.setattr(mmeval.runner.Runner, "run", full)
    assert last_error_line(mock_run(data, tmp_path / "out", "pope")) == says
