"""Data provenance records: file digests equal hashlib's, names are relative to the data folder,
the JSON form is what results files carry."""
import hashlib

from mmeval.data.provenance import DataSource, FileDigest, file_sha256


def test_digest_and_json(tmp_path):
    (tmp_path / "coco").mkdir()
    f = tmp_path / "coco" / "coco_pope_random.json"
    f.write_bytes(b'{"question_id": 1}\r\n')
    assert file_sha256(f) == hashlib.sha256(f.read_bytes()).hexdigest()
    src = DataSource.from_files("pope-original", "pope-original@e3e3926", "test", tmp_path, [f, f], questions=1,
                                questions_per_split={"random": 1})
    assert src.files == [FileDigest("coco/coco_pope_random.json", f.stat().st_size, file_sha256(f))]
    j = src.to_json()
    assert j["files"][0]["name"] == "coco/coco_pope_random.json" and j["questions_per_split"] == {"random": 1}
    assert list(j) == ["layout", "version", "split", "source", "files", "questions", "questions_per_split"]


def test_digest_follows_content_changes(tmp_path):
    f = tmp_path / "a.json"
    f.write_text("1")
    first = file_sha256(f)
    f.write_text("22")  # another size: a new cache key
    assert file_sha256(f) != first
