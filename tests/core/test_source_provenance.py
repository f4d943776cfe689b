"""Provenance from the shared readers: the lmms-lab parquet folder (files digested), the hub (the id
that loaded, the release named by the old id), and `mmeval synth` folders (version "synthetic...")."""
import json

from mmeval.data.provenance import file_sha256
from mmeval.data.sources import dataset_release, folder_source, hub_source, read_lmms_lab_with_source
from tasks.pope import Pope
from tests.conftest import pope_rows

IDS = ("lmms-lab-encoder/POPE", "lmms-lab/POPE")


def test_parquet_folder_source(tmp_path):
    path = Pope.write_layout(tmp_path / "pope", pope_rows(n_images=2))
    rows, src = read_lmms_lab_with_source(IDS, "pope", tmp_path / "pope", ("question_id",), "test")
    assert len(rows) == 6 and src.questions == 6
    assert (src.layout, src.version, src.split, src.source) == ("lmms-lab-parquet", "lmms-lab/POPE", "test",
                                                               str(tmp_path / "pope"))
    assert [(f.name, f.sha256) for f in src.files] == [(str(path.relative_to(tmp_path / "pope")), file_sha256(path))]


def test_hub_source_names_the_loaded_id():
    src = hub_source(IDS, "lmms-lab-encoder/POPE", "test", 9000)
    assert (src.layout, src.version, src.source, src.files) == ("hub", "lmms-lab/POPE", "lmms-lab-encoder/POPE", [])
    assert dataset_release("yerevann/coco-karpathy") == "yerevann/coco-karpathy"


def test_synthetic_folder(tmp_path):
    (tmp_path / "pope").mkdir()
    f = tmp_path / "pope" / "a.json"
    f.write_text("{}")
    assert folder_source("official", "x@1", "test", tmp_path / "pope", [f], 1).version == "x@1"
    (tmp_path / "synth.json").write_text(json.dumps({"seed": 3, "tasks": {"gqa": {}}}))
    assert folder_source("official", "x@1", "test", tmp_path / "pope", [f], 1).version == "x@1"  # not this task
    (tmp_path / "synth.json").write_text(json.dumps({"seed": 3, "tasks": {"pope": {}}}))
    src = folder_source("lmms-lab-parquet", "x@1", "test", tmp_path / "pope", [f], 1)
    assert (src.layout, src.version) == ("lmms-lab-parquet", "synthetic@seed3")


def test_hub_fallback_records_the_id_that_loaded(monkeypatch):
    import datasets

    tried = []

    def fake_load(hid, config=None, split=None):
        tried.append(hid)
        if hid.startswith("lmms-lab-encoder/"):
            raise FileNotFoundError(hid)  # e.g. a hub mirror without the new org
        return datasets.Dataset.from_list([{"question_id": "1"}, {"question_id": "2"}])

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    rows, src = read_lmms_lab_with_source(IDS, "pope", None, ("question_id",), "test")
    assert tried == list(IDS) and len(rows) == 2
    assert (src.layout, src.version, src.source, src.questions) == ("hub", "lmms-lab/POPE", "lmms-lab/POPE", 2)
