"""mmeval synth: every task's layout written and loaded; determinism; the embedded default of `mmeval run`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmeval.cli import main
from mmeval.runner import RunConfig
from mmeval.synth.benchmarks import TASKS, write_benchmarks
from mmeval.synth.defaults import apply_embedded_default


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_synth_writes_every_layout_and_mock_run_loads_them(tmp_path):
    data = tmp_path / "synth"
    r = CliRunner().invoke(main, ["synth", "--out", str(data), "--seed", "3", "--n", "8"])
    assert r.exit_code == 0, r.output
    manifest = json.loads((data / "synth.json").read_text())
    assert set(manifest["tasks"]) == set(TASKS)
    assert (data / "vsr" / "test.jsonl").is_file() and (data / "vsr" / "images").is_dir()
    assert (data / "gqa" / "testdev_balanced_instructions").is_dir()
    out = tmp_path / "runs"
    r = CliRunner().invoke(main, ["run", "--model", "mock", "--tasks", ",".join(TASKS), "--data", str(data),
                                  "--task-args", "vqav2.split=val", "--output", str(out), "--run-name", "m",
                                  "--no-progress", "--bootstrap", "0"])
    assert r.exit_code == 0, r.output
    for task in TASKS:
        res = json.loads((out / "m" / f"{task}.json").read_text())
        assert res["n"] > 0 and res["n_errors"] == 0, task
        if task != "mmvet":  # MM-Vet needs a judge: no metrics without one
            assert res["metrics"], task


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a, b, c = (tmp_path / x for x in "abc")
    for d, seed in ((a, 1), (b, 1), (c, 2)):
        write_benchmarks(d, seed=seed, counts=5, tasks=("pope", "vsr", "mmbench", "textvqa"))
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_training_set_is_llava_format(tmp_path):
    from mmeval.synth.training import build_training_set

    res = build_training_set(tmp_path / "train", seed=0, scale=0.05, tasks=("pope", "vsr", "gqa"))
    rows = json.loads(Path(res["file"]).read_text())
    assert res["n"] == len(rows) > 0
    for row in rows:
        human, gpt = row["conversations"]
        assert human["from"] == "human" and human["value"].startswith("<image>\n")
        assert gpt["from"] == "gpt" and gpt["value"]
        assert (Path(res["images"]) / row["image"]).is_file()
    assert {r["conversations"][1]["value"] for r in rows if r["id"].startswith("vsr")} <= {"True", "False"}


# ---------------------------------------------------------------- the embedded default
class Fakes:
    def __init__(self, tmp_path: Path, released: bool = False):
        self.tmp, self.calls, self.has_release = tmp_path, [], released

    def data(self, seed=0, cache=None, log=print):
        self.calls.append("data")
        return self.tmp / "demo-data"

    def demo(self, model):
        self.calls.append(model)
        return {"checkpoint": str(self.tmp / model)}

    def released(self, model):
        self.calls.append(f"released {model}")
        if self.has_release and model == "cobra":
            return {"checkpoint": "/hub/cobra+3b", "vision": "/hub"}, "han1997/cobra cobra+3b"
        return None, "offline"


def _apply(cfg, fakes):
    lines = []
    new = apply_embedded_default(cfg, lines.append, released=fakes.released, make_data=fakes.data,
                                 demo_args=fakes.demo)
    return new, lines


def test_default_fills_demo_model_and_data_when_nothing_given(tmp_path):
    fakes = Fakes(tmp_path)
    cfg = RunConfig(model="vl-mamba", tasks=["pope", "gqa", "vqav2"])
    new, lines = _apply(cfg, fakes)
    assert new.model_args == {"checkpoint": str(tmp_path / "vl-mamba")}
    assert new.data == tmp_path / "demo-data"
    assert new.task_args == {"vqav2": {"split": "val"}}
    assert len(lines) == 1
    assert "no checkpoint given (offline): using the demo vl-mamba model shipped with mmeval" in lines[0]
    assert f"on the generated benchmarks ({tmp_path / 'demo-data'})" in lines[0] and "not the paper's" in lines[0]
    assert cfg.model_args == {} and cfg.data is None  # the input is not changed


def test_default_keeps_what_is_given(tmp_path):
    fakes = Fakes(tmp_path, released=True)
    given = RunConfig(model="cobra", tasks=["pope"], model_args={"checkpoint": "/ckpt"}, data=tmp_path)
    new, lines = _apply(given, fakes)
    assert new is given and lines == [] and fakes.calls == []
    # a checkpoint without data is never run on generated data
    no_data = RunConfig(model="cobra", tasks=["pope"], model_args={"checkpoint": "/ckpt"})
    assert _apply(no_data, fakes)[0] is no_data and fakes.calls == []
    # data without a checkpoint: the demo model, the given data
    new, lines = _apply(RunConfig(model="vl-mamba", tasks=["pope"], data=tmp_path), fakes)
    assert new.data == tmp_path and new.model_args["checkpoint"] == str(tmp_path / "vl-mamba")
    assert "on the data in --data" in lines[0] and "data" not in fakes.calls
    # tiny=1, other models, tasks the generator does not cover: untouched
    for cfg in (RunConfig(model="vl-mamba", tasks=["pope"], model_args={"tiny": "1"}, data=tmp_path),
                RunConfig(model="mock", tasks=["pope"], data=tmp_path)):
        assert _apply(cfg, fakes)[0] is cfg
    cfg = RunConfig(model="mock", tasks=["coco_caption"])
    assert _apply(cfg, fakes)[0] is cfg


def test_cobra_default_is_the_released_checkpoint_when_fetched_else_the_demo_model(tmp_path):
    """No checkpoint for Cobra: the released one where it can be fetched (a real run: the hub's data
    or --data, never generated data), else the shipped demo model on the generated data; one line each."""
    new, lines = _apply(RunConfig(model="cobra", tasks=["pope", "gqa"]), Fakes(tmp_path, released=True))
    assert new.model_args == {"checkpoint": "/hub/cobra+3b", "vision": "/hub"} and new.data is None
    assert len(lines) == 1 and "using the released cobra checkpoint (han1997/cobra cobra+3b: /hub/cobra+3b)" \
        in lines[0] and "on the benchmarks' hub copies" in lines[0]
    fakes = Fakes(tmp_path, released=False)
    new, lines = _apply(RunConfig(model="cobra", tasks=["pope", "gqa"]), fakes)
    assert new.model_args == {"checkpoint": str(tmp_path / "cobra")} and new.data == tmp_path / "demo-data"
    assert fakes.calls == ["released cobra", "cobra", "data"]
    assert len(lines) == 1 and lines[0].startswith("no checkpoint given (offline): using the demo cobra model")


def test_cobra_released_asks_the_hub_client_only_when_not_offline(monkeypatch, tmp_path):
    """CobraDemo.released: offline mode set, the hub client is not called; an unreachable hub is the
    reason given; a fetched snapshot gives checkpoint= its cobra+3b run dir and vision= the hub cache."""
    import huggingface_hub

    from mmeval.registry import get_model_class

    spec = get_model_class("cobra").demo
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: pytest.fail("asked the hub"))
    assert spec.released() == (None, "offline mode (HF_HUB_OFFLINE) is set")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    asked = []

    def unreachable(repo_id, **kw):
        asked.append(repo_id)
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    args, why = spec.released()
    assert args is None and asked == ["han1997/cobra"]
    assert why == "han1997/cobra could not be fetched (ConnectionError: Name or service not known)"

    def fetched(repo_id, allow_patterns=None, **kw):
        asked.append((repo_id, tuple(allow_patterns)))
        return str(tmp_path / repo_id.replace("/", "--"))

    asked.clear()
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fetched)
    args, why = spec.released()
    assert args == {"checkpoint": str(tmp_path / "han1997--cobra" / "cobra+3b"),
                    "vision": str(huggingface_hub.constants.HF_HUB_CACHE)}
    assert asked == [("han1997/cobra", ("cobra+3b/*",)),
                     ("timm/vit_large_patch14_reg4_dinov2.lvd142m", ("*.json", "model.safetensors")),
                     ("timm/vit_so400m_patch14_siglip_384.webli", ("*.json", "model.safetensors"))]


@pytest.mark.parametrize("family", ["vl-mamba", "cobra"])
def test_demo_model_trains_caches_and_loads(tmp_path, family, monkeypatch):
    """A very short training run goes through the finetune loop, is cached, reused, and loads through
    the adapter with the checkpoint args the default fills in."""
    from mmeval.registry import get_model_class
    from mmeval.synth import demo_models

    monkeypatch.setattr(get_model_class(family).demo, "settings", dict(steps=2, align_steps=2, train_scale=0.02,
                                                                        batch_size=4, d_model=16, n_layer=1,
                                                                        caption_mix=16))
    cfg = demo_models.demo_config(family)
    ckpt = demo_models.train_demo_model(cfg, tmp_path, log=lambda m: None, progress=False)
    assert demo_models.cached(cfg, tmp_path) == ckpt
    assert demo_models.train_demo_model(cfg, tmp_path, log=lambda m: None) == ckpt  # reused
    adapter = get_model_class(family).from_args(demo_models.model_args(family, ckpt))
    assert adapter.tokenizer.eos_token == "<|endoftext|>"


@pytest.mark.slow  # two rounds of two child processes, each importing torch and training
def test_demo_models_train_side_by_side_in_child_processes(tmp_path):
    """With two cores the missing demo models train at once, one child process each (one thread
    each), on training data written once by the parent; the result is what training in-process
    caches, and a failing child is named in a one-line error."""
    from mmeval.synth import demo_models

    tiny = dict(steps=2, align_steps=2, train_scale=0.02, batch_size=4, d_model=16, n_layer=1, caption_mix=16)
    cfgs = [demo_models.DemoConfig(model=m, **tiny) for m in ("vl-mamba", "cobra")]
    lines: list[str] = []
    ckpts = demo_models.train_demo_models(cfgs, tmp_path, log=lines.append, cores=2)
    assert set(ckpts) == {"vl-mamba", "cobra"}
    assert all(demo_models.cached(c, tmp_path) == ckpts[c.model] for c in cfgs)
    assert sum("child process (1 thread)" in m for m in lines) == 2
    meta = json.loads((tmp_path / "cobra" / demo_models.KEY_FILE).read_text())
    assert meta["threads"] == 1 and meta["pid"] != os.getpid()
    assert demo_models.train_demo_models(cfgs, tmp_path, log=lines.append, cores=2) == ckpts  # cached

    bad = [dataclasses.replace(cfgs[0], seed=1), dataclasses.replace(cfgs[1], seed=1, trainable="nonsense")]
    with pytest.raises(RuntimeError, match=r"demo model cobra: training failed \(child exit code 1"):
        demo_models.train_demo_models(bad, tmp_path, log=lines.append, cores=2)
    assert demo_models.cached(bad[0], tmp_path) is not None  # the other one finished


def test_embedded_default_end_to_end_offline_trains_nothing_and_probes_no_network(tmp_path, monkeypatch):
    """Nothing given, offline: the shipped demo model on the generated data (written once), scored; no
    training, no socket opened; a second application reuses the data."""
    import socket

    from mmeval.runner import Runner
    from mmeval.synth import benchmarks, demo_models

    def no_network(*a, **k):
        raise AssertionError("opened a network connection")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(demo_models, "train_demo_model", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr(demo_models, "train_demo_models", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setenv("MMEVAL_DEMO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(benchmarks, "DEFAULT_COUNTS", {t: 6 for t in benchmarks.TASKS})
    for model in ("vl-mamba", "cobra"):
        lines: list[str] = []
        cfg = apply_embedded_default(RunConfig(model=model, tasks=["pope", "vsr"], output=tmp_path / "runs",
                                               progress=False, n_boot=0), lines.append)
        assert cfg.data == tmp_path / "cache" / "data-seed0" and "mmeval/synth/demo_weights" in cfg.model_args[
            "checkpoint"]
        assert len(lines) == 1 and "shipped with mmeval" in lines[0]
        assert ("written now" in lines[0]) == (model == "vl-mamba")  # the data is written once
        res = Runner(cfg, log=lambda m: None).run()
        assert res["pope"]["n"] == 6 and res["vsr"]["n"] == 6


def test_caption_styles_name_every_object_keyed_by_slot_shape_or_colour(tmp_path):
    """Hand-written captions of one scene in the three styles; the caption set draws all three."""
    from mmeval.synth.images import Obj, Scene
    from mmeval.synth.training import build_caption_set, caption

    scene = Scene([Obj("square", "blue", 2), Obj("circle", "red", 0)])
    assert caption(scene) == caption(scene, "slots") == "2 shapes: red circle left, blue square right."
    assert caption(scene, "shapes") == "circle red left, square blue right, triangle none."
    assert caption(scene, "colors") == "blue square right, green none, red circle left, yellow none."
    with pytest.raises(ValueError, match="caption style must be one of slots, shapes, colors"):
        caption(scene, "rows")
    build_caption_set(tmp_path, seed=0, n=60)
    texts = [r["conversations"][1]["value"] for r in json.loads((tmp_path / "captions.json").read_text())]
    assert any(t[0].isdigit() for t in texts) and any(t.startswith("circle ") for t in texts)
    assert any(t.startswith("blue ") for t in texts) and any(t.startswith("the word ") for t in texts)


def test_demo_caption_set_grows_and_descriptions_join_stage_two(tmp_path):
    """The caption set is (re)written as large as the stages need; stage 2 gets the questions plus
    `caption_mix` "Describe the image." conversations, seeded; the tower settings reach both families."""
    from mmeval.synth import demo_models
    from mmeval.synth.training import build_caption_set

    build_caption_set(tmp_path, seed=0, n=8)
    cfg = demo_models.DemoConfig(align_steps=10, batch_size=4, caption_mix=70)
    caps = demo_models.caption_rows(tmp_path, cfg, log=lambda m: None)
    assert len(caps) == 70 and len(json.loads((tmp_path / "captions.json").read_text())) == 70
    questions = [{"id": f"q{i}", "image": "x.png", "conversations": []} for i in range(5)]
    mixed = demo_models.instruct_rows(questions, caps, cfg)
    assert len(mixed) == 75 and {r["id"] for r in mixed} >= {"q0", "q4", "caption-69"}
    assert mixed == demo_models.instruct_rows(questions, caps, cfg)
    assert demo_models.instruct_rows(questions, caps, demo_models.DemoConfig(caption_mix=0)) == questions
    tok = demo_models.train_tokenizer(["a b c"])
    small = dict(d_model=16, n_layer=1, image_size=28, patch_size=7)
    vlm = demo_models.build_model(demo_models.DemoConfig(model="vl-mamba", **small), tok)
    assert vlm.cfg.vision_config["image_size"] == 28 and vlm.cfg.vision_config["patch_size"] == 7
    cobra = demo_models.build_model(demo_models.DemoConfig(model="cobra", **small), tok)
    assert cobra.cfg.image_size == 28
