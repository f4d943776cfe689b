"""A run is its inputs: other data, another model, or another task description never resumes into
an old run's samples. The default run folder is named by the inputs (other inputs: another
folder); a fixed --run-name holding other inputs stops with one line. Each probe of issue 21 that
once reported old scores is a test here, plus the parquet cache keyed on content."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmeval.cli import main
from mmeval.data.identity import data_identity, documents_digest, folder_entries
from mmeval.data.provenance import DataSource
from mmeval.data.sources import read_parquet_dir
from mmeval.registry import get_task
from mmeval.types import Doc, ImageRef
from tasks.pope import Pope
from tests.conftest import pope_rows


def run(data: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["run", "--model", "mock", "--tasks", "pope", "--data", str(data), "--output",
                                     str(out), "--no-progress", "--bootstrap", "0", *extra])


def flipped(rows: list[dict]) -> list[dict]:
    """The same documents (ids, questions, images) with every label flipped."""
    return [dict(r, answer="no" if r["answer"] == "yes" else "yes") for r in rows]


def one_error_line(r) -> str:
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2, r.output
    assert lines[-1].startswith("error: ") and not any("Traceback" in x for x in lines), r.output
    return lines[-1]


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "pope.json").read_text())


def expected_accuracy(samples: Path, labels: dict[str, str]) -> float:
    """POPE llava accuracy from the samples' parsed answers against the given labels, by hand:
    the mean over categories of each category's share of right answers."""
    per_cat: dict[str, list[float]] = {}
    for line in samples.read_text().splitlines():
        s = json.loads(line)
        per_cat.setdefault(s["scores"]["category"], []).append(float(s["scores"]["pred"] == labels[s["doc_id"]]))
    return 100 * sum(sum(v) / len(v) for v in per_cat.values()) / len(per_cat)


def labels_of(rows: list[dict]) -> dict[str, str]:
    return {f"{r['category']}/{r['question_id']}": r["answer"] for r in rows}


# --------------------------------------------------------------------------- probe: other data, same doc ids
def run_dir_of(r) -> Path:
    return Path(next(x for x in r.output.splitlines() if x.startswith("run directory: "))[len("run directory: "):])


def test_other_data_with_the_same_doc_ids_is_not_resumed(tmp_path):
    rows = pope_rows()
    Pope.write_layout(tmp_path / "a" / "pope", rows)
    Pope.write_layout(tmp_path / "b" / "pope", flipped(rows))
    out = tmp_path / "out"
    first = run(tmp_path / "a", out)
    assert first.exit_code == 0, first.output
    r = run(tmp_path / "b", out)  # the same command on the new labels
    assert r.exit_code == 0, r.output
    assert "already done" not in r.output
    old, new = run_dir_of(first), run_dir_of(r)
    assert old != new and sorted(d for d in out.iterdir() if d.is_dir()) == sorted([old, new])
    # each folder's numbers are its own labels' numbers, computed by hand from its samples
    for run_dir, data_rows in ((old, rows), (new, flipped(rows))):
        assert results(run_dir)["metrics"]["accuracy"] == pytest.approx(
            expected_accuracy(run_dir / "pope.samples.jsonl", labels_of(data_rows)))
    assert results(old)["metrics"]["accuracy"] != results(new)["metrics"]["accuracy"]
    # and the same command on the first data again resumes its own folder
    again = run(tmp_path / "a", out)
    assert run_dir_of(again) == old and "18 already done, 0 to go" in again.output


def test_other_data_into_a_fixed_run_name_stops_with_one_line(tmp_path):
    rows = pope_rows()
    Pope.write_layout(tmp_path / "a" / "pope", rows)
    Pope.write_layout(tmp_path / "b" / "pope", flipped(rows))
    out = tmp_path / "out"
    assert run(tmp_path / "a", out, "--run-name", "fixed").exit_code == 0
    before = (out / "fixed" / "pope.samples.jsonl").read_bytes()
    line = one_error_line(run(tmp_path / "b", out, "--run-name", "fixed"))
    assert "task pope was run here with different data (provenance " in line and "--run-name" in line
    assert (out / "fixed" / "pope.samples.jsonl").read_bytes() == before  # nothing read back, nothing appended
    # the same data again resumes (the fingerprint is stable)
    r = run(tmp_path / "a", out, "--run-name", "fixed")
    assert r.exit_code == 0 and "18 already done, 0 to go" in r.output


def test_a_parquet_rewritten_in_place_with_its_old_mtime_is_read_again(tmp_path):
    """`datasets` keys its cache on path and mtime; the rows must come from the file as it is now."""
    rows = pope_rows()
    path = Pope.write_layout(tmp_path / "data" / "pope", rows)
    first = read_parquet_dir(tmp_path / "data" / "pope", ["answer"], "test")
    assert list(first["answer"]) == [r["answer"] for r in rows]
    st = path.stat()
    Pope.write_layout(tmp_path / "data" / "pope", flipped(rows))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the old mtime, as a careless copy keeps it
    assert path.stat().st_mtime_ns == st.st_mtime_ns
    again = read_parquet_dir(tmp_path / "data" / "pope", ["answer"], "test")
    assert list(again["answer"]) == [r["answer"] for r in flipped(rows)]
    # and a run into the same fixed name sees other data, not the old run
    out = tmp_path / "out"
    Pope.write_layout(tmp_path / "data" / "pope", rows)
    assert run(tmp_path / "data", out, "--run-name", "fixed").exit_code == 0
    st = path.stat()
    Pope.write_layout(tmp_path / "data" / "pope", flipped(rows))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert "with different data" in one_error_line(run(tmp_path / "data", out, "--run-name", "fixed"))


# --------------------------------------------------------------------------- probe: run.json deleted
def test_another_model_after_run_json_is_deleted_reuses_nothing(pope_data, tmp_path):
    out = tmp_path / "out"
    assert run(pope_data, out, "--run-name", "r").exit_code == 0
    samples = out / "r" / "pope.samples.jsonl"
    before = samples.read_bytes()
    (out / "r" / "run.json").unlink()
    line = one_error_line(run(pope_data, out, "--run-name", "r", "--model-args", "seed=1"))
    assert f"{samples}: answered by model mock (seed=0), not mock (seed=1)" in line
    assert samples.read_bytes() == before and not (out / "r" / "run.json").exists()  # nothing written
    # the first model resumes as before
    r = run(pope_data, out, "--run-name", "r")
    assert r.exit_code == 0 and "18 already done" in r.output


def test_samples_without_an_identity_record_are_never_resumed(pope_data, tmp_path):
    """An old-format run (no identity record) or one whose record and run.json were both removed."""
    out = tmp_path / "out"
    assert run(pope_data, out, "--run-name", "r").exit_code == 0
    (out / "r" / "run.json").unlink()
    (out / "r" / "pope.samples.identity.json").unlink()
    line = one_error_line(run(pope_data, out, "--run-name", "r", "--model-args", "seed=1"))
    assert "pope.samples.jsonl: no record of the model and data it was answered with" in line
    assert "it is not resumed" in line
    # still readable by `mmeval score`
    r = CliRunner().invoke(main, ["score", "--task", "pope", "--predictions", str(out / "r" / "pope.samples.jsonl"),
                                  "--data", str(pope_data), "--bootstrap", "0"])
    assert r.exit_code == 0, r.output


def test_a_changed_task_description_names_what_changed(pope_data, tmp_path):
    out = tmp_path / "out"
    assert run(pope_data, out, "--run-name", "r").exit_code == 0
    (out / "r" / "run.json").unlink()  # only the identity record is left to tell
    line = one_error_line(run(pope_data, out, "--run-name", "r", "--protocol", "prismatic"))
    assert "answered with a different protocol (llava then, prismatic now)" in line


# --------------------------------------------------------------------------- what the data identity covers
def test_data_identity_follows_content_not_place(tmp_path):
    rows = pope_rows()
    for name in ("a", "b", "c"):
        Pope.write_layout(tmp_path / name / "pope", rows if name != "c" else flipped(rows))

    def identity(name: str, provenance: bool = True):
        task = get_task("pope")
        docs = task.load_docs(tmp_path / name / "pope")
        if not provenance:
            task.data_source = None  # a task that records none: the folder is digested
        return data_identity(task, tmp_path / name / "pope", docs)

    a, b, c = identity("a"), identity("b"), identity("c")
    assert a.basis == "provenance" and a.files == 1  # the parquet file the task read
    assert a == b and a != c  # the same bytes elsewhere are the same data; other labels are not
    (tmp_path / "b" / "pope" / "notes.txt").write_text("x")
    assert identity("b") == a  # a file the task does not read is not its data
    fa, fb = identity("a", provenance=False), identity("b", provenance=False)
    assert fa.basis == "folder" and fa.files == 1 and fb.files == 2 and fa != fb  # the folder counts everything


def test_folder_entries_hash_annotations_and_count_images_by_name_and_size(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "1.jpg").write_bytes(b"abc")
    (tmp_path / "q.json").write_text('{"a": 1}')
    (tmp_path / ".hidden").write_text("ignored")
    entries = folder_entries(tmp_path)
    assert entries == [["images/1.jpg", 3, ""], ["q.json", 8, hashlib.sha256(b'{"a": 1}').hexdigest()]]
    # a linked folder is followed (once: a second link to it and a link cycle add nothing)
    shared = tmp_path.parent / f"{tmp_path.name}-coco"
    shared.mkdir()
    (shared / "2.jpg").write_bytes(b"abcd")
    os.symlink(shared, tmp_path / "coco")
    os.symlink(shared, tmp_path / "zz-coco-again")
    os.symlink(tmp_path, tmp_path / "images" / "loop")
    assert [e[:2] for e in folder_entries(tmp_path)] == [["coco/2.jpg", 4], ["images/1.jpg", 3], ["q.json", 8]]


def test_documents_digest_sees_labels_fields_and_image_bytes():
    def docs(target="yes", question="q", data=b"img"):
        return [Doc(doc_id="1", fields={"question": question}, target=target,
                    images=(ImageRef(source="s", data=data),))]

    base = documents_digest(docs(), None, hash_bytes=True)
    assert base == documents_digest(docs(), None, hash_bytes=True)
    assert base != documents_digest(docs(target="no"), None, hash_bytes=True)
    assert base != documents_digest(docs(question="q2"), None, hash_bytes=True)
    assert base != documents_digest(docs(data=b"img2"), None, hash_bytes=True)
    assert base != documents_digest(docs(question="\ud800"), None, hash_bytes=True)  # an invalid code point hashes
    # with the files hashed elsewhere (a local folder), image bytes count by length only
    assert documents_digest(docs(data=b"abc"), Path("/d"), hash_bytes=False) == \
        documents_digest(docs(data=b"xyz"), Path("/d"), hash_bytes=False)


def test_a_tasks_provenance_is_the_basis_when_it_has_one(tmp_path):
    f = tmp_path / "questions.json"
    f.write_text("[1]")
    task = get_task("pope")
    docs = [Doc(doc_id="1", fields={}, target="yes")]
    task.data_source = DataSource.from_files("official", "v1", "test", tmp_path, [f])
    first = data_identity(task, tmp_path, docs)
    assert (first.basis, first.files) == ("provenance", 1)
    (tmp_path / "unrelated.bin").write_bytes(b"x" * 10)  # not read by the task: not in its provenance
    assert data_identity(task, tmp_path, docs) == first
    f.write_text("[2]")
    task.data_source = DataSource.from_files("official", "v1", "test", tmp_path, [f])
    assert data_identity(task, tmp_path, docs) != first


def test_judge_options_stay_out_of_the_fingerprint_and_secrets_out_of_results():
    task = get_task("mmvet", judge_url="http://h/v1?api-key=SEKRET-1234", judge_key="sk-SEKRET-5678",
                    judge_model="m")
    assert task.identity_options() == {}
    recorded = json.dumps(task.recorded_options())
    assert "SEKRET" not in recorded and "api-key=***" in recorded and '"judge_model": "m"' in recorded
    vqa = get_task("vqav2", split="val")
    assert vqa.identity_options() == {"split": "val"}
