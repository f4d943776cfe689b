"""bench/demo_probe.py: held-out questions with the right and a shuffled picture, on a tiny demo model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def _load_probe():
    spec = importlib.util.spec_from_file_location("demo_probe", ROOT / "bench" / "demo_probe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_probe_scores_answers_with_the_right_and_a_shuffled_picture(tmp_path):
    from mmeval.finetune.collate import Collator
    from mmeval.finetune.data import ConversationDataset
    from mmeval.finetune.loop import token_loss_sum
    from mmeval.finetune.specs import get_spec
    from mmeval.synth import demo_models

    cfg = demo_models.DemoConfig(model="vl-mamba", steps=2, align_steps=2, train_scale=0.02, batch_size=4,
                                 d_model=16, n_layer=1, caption_mix=16)
    ckpt = demo_models.train_demo_model(cfg, tmp_path / "cache", log=lambda m: None, progress=False)
    probe = _load_probe()
    out = tmp_path / "probe.json"
    res = probe.main(["--model", "vl-mamba", "--checkpoint", str(ckpt), "--data", str(tmp_path / "held"),
                      "--scale", "0.02", "--per-task", "5", "--out", str(out)])
    assert json.loads(out.read_text()) == res
    assert {"pope", "gqa", "vqav2", "mme"} <= set(res)
    for r in res.values():
        assert r["right"]["n"] == r["shuffled"]["n"] > 0
        assert 0.0 <= r["right"]["accuracy"] <= 100.0 and r["right"]["loss"] > 0

    # the "right" loss is the finetune loop's token loss over the same questions
    rows = [r for r in json.loads((tmp_path / "held" / "train.json").read_text()) if r["id"].startswith("pope-")][:5]
    spec = get_spec("vl-mamba")
    model, tok = spec.load(ckpt, "cpu", {})
    model = model.float().eval()
    ds = ConversationDataset(rows, str(tmp_path / "held" / "images"), spec.formatter(model, tok, "chat", 256),
                             spec.image_transform(model))
    batch = Collator(pad_id=spec.pad_id(tok), image_first=spec.image_first)([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        o = spec.forward(model, batch, "cpu")
    loss, count = token_loss_sum(o.logits, o.labels, spec.loss_vocab(model))
    assert abs(res["pope"]["right"]["loss"] - float(loss) / count) < 1e-4
