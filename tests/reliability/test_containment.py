"""Every path read from a data file stays inside the data folder (or an image folder the user
named); anything else is that sample's error, naming the path, and the other samples run. Issue 21:
VSR's `../../x` and `/etc/shadow`, parquet cells' `path`, relative paths resolved against the
working directory. Each probe uses a readable image outside the folder, so a run that opened it
would answer that sample instead of failing it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from mmeval.cli import main
from mmeval.data.containment import contain_images, is_inside, join_inside
from mmeval.data.sources import image_ref
from mmeval.types import Doc, ImageError, ImageRef
from tasks.mmvet import MMVet
from tasks.pope import Pope
from tasks.vsr import VSR
from tests.conftest import pope_rows


def picture(path: Path, colour=(200, 10, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)
    return path


def run(task: str, data: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["run", "--model", "mock", "--tasks", task, "--data", str(data), "--output",
                                     str(out), "--run-name", "r", "--no-progress", "--bootstrap", "0", *extra])


def samples(out: Path, task: str) -> dict[str, dict]:
    lines = [json.loads(x) for x in (out / "r" / f"{task}.samples.jsonl").read_text().splitlines()]
    return {s["doc_id"]: s for s in lines}


def test_vsr_image_paths_that_leave_the_data_folder_fail_their_sample(tmp_path):
    data = tmp_path / "data"
    secret = picture(tmp_path / "secret.jpg")  # readable, outside --data
    picture(tmp_path / "outside.jpg")
    rows = [{"image": f"{i}.jpg", "caption": f"The cat is left of dog {i}.", "label": i % 2, "picture":
             Image.new("RGB", (8, 8), (40 * i, 0, 0))} for i in range(2)]
    VSR.write_layout(data / "vsr", rows)
    jsonl = data / "vsr" / "test.jsonl"
    lines = jsonl.read_text().splitlines()
    extra = [dict(json.loads(lines[0]), image=name) for name in
             ("../../../outside.jpg", str(secret), "../../../nothing-here.jpg")]
    jsonl.write_text("".join(x + "\n" for x in lines) + "".join(json.dumps(e) + "\n" for e in extra))

    r = run("vsr", data, tmp_path / "out")
    assert r.exit_code == 3, r.output  # failed samples
    by_id = samples(tmp_path / "out", "vsr")
    assert [by_id[str(i)]["error"] is None for i in range(5)] == [True, True, False, False, False]
    assert "image path" in by_id["2"]["error"] and "../../../outside.jpg" in by_id["2"]["error"]
    assert f"resolves to {tmp_path / 'outside.jpg'}, outside the data folder" in by_id["2"]["error"]
    assert str(secret) in by_id["3"]["error"] and "outside the data folder" in by_id["3"]["error"]
    # a missing file outside: that sample's error too, not the whole task's "image not found"
    assert "nothing-here.jpg" in by_id["4"]["error"] and "outside the data folder" in by_id["4"]["error"]
    res = json.loads((tmp_path / "out" / "r" / "vsr.json").read_text())
    assert (res["n"], res["n_errors"]) == (2, 3)


def test_vsr_images_option_names_another_allowed_folder(tmp_path):
    data, elsewhere = tmp_path / "data", tmp_path / "coco"
    rows = [{"image": f"{i}.jpg", "caption": f"c{i}", "label": 1, "picture": Image.new("RGB", (8, 8))}
            for i in range(2)]
    VSR.write_layout(data / "vsr", rows)
    for i in range(2):
        (data / "vsr" / "images" / f"{i}.jpg").rename(picture(elsewhere / f"{i}.jpg"))
    r = run("vsr", data, tmp_path / "out", "--task-args", f"vsr.images={elsewhere}")
    assert r.exit_code == 0, r.output
    assert all(s["error"] is None for s in samples(tmp_path / "out", "vsr").values())


def test_parquet_cell_paths_never_resolve_against_the_working_directory(tmp_path, monkeypatch):
    data = tmp_path / "data"
    cwd = tmp_path / "cwd"
    picture(cwd / "in-cwd.png")
    outside = picture(tmp_path / "outside.png")
    rows = pope_rows(n_images=3, per_image=1)
    rows[0]["image"] = {"bytes": None, "path": "in-cwd.png"}
    rows[1]["image"] = {"bytes": None, "path": str(outside)}
    monkeypatch.chdir(cwd)  # where the relative path would be found (the writer looks up its size too)
    Pope.write_layout(data / "pope", rows)
    r = run("pope", data, tmp_path / "out")
    assert r.exit_code == 3, r.output
    by_id = samples(tmp_path / "out", "pope")
    first, second, third = (by_id[f"{rows[i]['category']}/{rows[i]['question_id']}"] for i in range(3))
    # resolved in the data folder (where it is not), never in the working directory (where it is)
    assert f"{data / 'pope' / 'in-cwd.png'}" in first["error"] and str(cwd) not in first["error"]
    assert str(outside) in second["error"]
    assert third["error"] is None


def test_mmvet_official_image_names_stay_in_images(tmp_path):
    rows = [dict(question_id=f"v1_{i}", question="q", answer="a", capability=["rec"], image=Image.new("RGB", (5, 5)))
            for i in range(2)]
    root = MMVet.write_layout(tmp_path / "data" / "mmvet", rows, "official")
    picture(tmp_path / "x.png")
    meta = json.loads((root / "mm-vet.json").read_text())
    meta["v1_1"]["imagename"] = "../../../x.png"
    (root / "mm-vet.json").write_text(json.dumps(meta))
    docs = MMVet().load_docs(root)
    docs[0].images[0].load()
    with pytest.raises(ImageError, match=r"image path .*\.\./\.\./\.\./x\.png of mmvet v1_1 resolves to .*x\.png, "
                                         "outside the data folder"):
        docs[1].images[0].load()


# --------------------------------------------------------------------------- the pieces
def test_image_ref_paths_resolve_inside_the_root(tmp_path):
    picture(tmp_path / "a.png")
    assert image_ref({"bytes": None, "path": "a.png"}, "s", tmp_path).path == str(tmp_path / "a.png")
    assert image_ref("a.png", "s", tmp_path).path == str(tmp_path / "a.png")
    for cell in ({"bytes": None, "path": "../a.png"}, {"bytes": None, "path": "/etc/hostname"}, "../../a.png",
                 {"bytes": None, "path": "sub/../../a.png"}):
        ref = image_ref(cell, "doc 7", tmp_path)
        assert ref.path is None
        with pytest.raises(ImageError, match="of doc 7 resolves to .* outside the data folder"):
            ref.load()
    with pytest.raises(ImageError, match="no data folder"):
        image_ref({"bytes": None, "path": "a.png"}, "doc 8").load()
    assert image_ref({"bytes": b"xyz", "path": "/etc/hostname"}, "s").data == b"xyz"  # the bytes are the image


def test_containment_is_lexical_and_follows_links_the_user_made(tmp_path, monkeypatch):
    shared = tmp_path / "shared-coco"
    picture(shared / "1.jpg")
    data = tmp_path / "data"
    data.mkdir()
    os.symlink(shared, data / "coco")  # the user's link: followed
    assert is_inside(data / "coco" / "1.jpg", [data]) and is_inside(data / "a" / ".." / "b", [data])
    assert not is_inside(data / ".." / "x", [data]) and not is_inside("/etc/shadow", [data])
    assert not is_inside(tmp_path / "data-other" / "x", [data])  # a sibling sharing the prefix
    assert join_inside(data, "coco/1.jpg") == data / "coco" / "1.jpg"
    assert join_inside(data, "/etc/shadow") is None and join_inside(data, "a/../../x") is None
    monkeypatch.chdir(tmp_path)  # a relative --data works the same
    docs = [Doc(doc_id=str(i), fields={}, images=(ImageRef(source=f"d{i}", path=p),))
            for i, p in enumerate(["data/coco/1.jpg", "data/../shared-coco/1.jpg", str(shared / "1.jpg")])]
    assert contain_images(docs, [Path("data")]) == 2
    docs[0].images[0].load()
    for d in docs[1:]:
        with pytest.raises(ImageError, match="outside the data folder data"):
            d.images[0].load()
