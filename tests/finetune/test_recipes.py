import pytest

from mmeval.finetune.recipes import get_recipe, parse_set


def test_paper_presets():
    a = get_recipe("vl-mamba", "align")
    assert (a.epochs, a.global_batch_size, a.learning_rate, a.warmup_ratio, a.max_length, a.trainable) == \
        (1, 256, 1e-3, 0.03, 2048, ("projector",))
    i = get_recipe("vl-mamba", "instruct")
    assert (i.epochs, i.global_batch_size, i.learning_rate, i.trainable, i.template) == \
        (1, 128, 2e-5, ("projector", "lm"), "chat")
    c = get_recipe("cobra", "finetune")  # alias of instruct
    assert (c.stage, c.epochs, c.global_batch_size, c.per_device_batch_size, c.learning_rate, c.weight_decay,
            c.warmup_ratio, c.warmup_rounding) == ("instruct", 2, 128, 16, 2e-5, 0.1, 0.03, "floor")
    ca = get_recipe("cobra", "align")
    assert (ca.epochs, ca.global_batch_size, ca.learning_rate, ca.weight_decay) == (1, 256, 1e-3, 0.0)
    assert c.accumulation(world_size=8) == 1 and ca.accumulation(world_size=4) == 4


def test_overrides_are_typed_and_checked():
    r = get_recipe("cobra", "align", parse_set(["learning_rate=3e-4,epochs=3", "trainable=projector+lm",
                                                 "group_by_modality_length=false,max_steps=1e2"]))
    assert r.learning_rate == 3e-4 and r.epochs == 3 and r.trainable == ("projector", "lm")
    assert r.group_by_modality_length is False and r.max_steps == 100
    with pytest.raises(ValueError, match="unknown recipe field"):
        get_recipe("cobra", "align", {"lr": "1"})
    with pytest.raises(ValueError, match="not a multiple"):
        get_recipe("cobra", "align", {"global_batch_size": "10", "per_device_batch_size": "4"}).accumulation(1)
    assert get_recipe("vl-mamba", "align").warmup_steps(100) == 3
    assert get_recipe("cobra", "align").warmup_steps(50) == 1  # int(1.5)


def test_batch_plan_independent_of_layout():
    from mmeval.finetune.data import BatchPlan

    lengths = [5, -3, 7, 9, -2, 4, 8, -6, 1, 2]
    plan = BatchPlan(lengths, global_batch_size=4, seed=1)
    b = plan.epoch(0)
    assert len(b) == 3 and all(len(x) == 4 for x in b)
    assert set(i for x in b for i in x) == set(range(10))
    assert plan.epoch(0) == b and plan.epoch(1) != b  # deterministic per epoch, reshuffled across epochs
    # 7 image + 3 text samples: one full image batch (single modality, sorted by length), then the
    # leftovers mixed (LLaVA's "additional batch"), the last one padded by wrapping
    assert all(lengths[i] > 0 for i in b[0]) and [abs(lengths[i]) for i in b[0]] == sorted(
        (abs(lengths[i]) for i in b[0]), reverse=True)
    one = [i for x in b for mb in BatchPlan.split(x, 0, 1, 2) for i in mb]
    two = [i for x in b for r in range(2) for mb in BatchPlan.split(x, r, 2, 1) for i in mb]
    assert one == two


def test_specs_come_from_the_model_registry():
    """Each family declares its finetune spec (with the recipes) on its adapter; `mock` has none."""
    from mmeval.finetune.specs import finetune_models, get_spec
    from mmeval.registry import model_classes

    assert set(finetune_models()) == {"cobra", "vl-mamba"}
    assert get_spec("cobra") is model_classes()["cobra"].finetune
    assert model_classes()["mock"].finetune is None
    with pytest.raises(ValueError, match="unknown model 'mock'; known: cobra, vl-mamba"):
        get_spec("mock")
    with pytest.raises(ValueError, match="unknown model 'mock'"):
        get_recipe("mock", "align")


def _numbers(text: str) -> list[float]:
    out = []
    for tok in text.replace("(", " ").replace(")", " ").replace(",", " ").split():
        try:
            out.append(float(tok))
        except ValueError:
            pass
    return out


@pytest.mark.parametrize("stage,script", [("align", "scripts/v1_5/pretrain.sh"),
                                          ("instruct", "scripts/v1_5/finetune.sh")])
def test_vl_mamba_numbers_credit_llava_not_the_paper(stage, script):
    """Every VL-Mamba number says where it comes from: LLaVA-1.5's script for that stage or the HF Trainer's
    defaults, and the number quoted there is the recipe's value; the paper is credited for the data only."""
    r = get_recipe("vl-mamba", stage)
    numeric = ["epochs", "global_batch_size", "per_device_batch_size", "learning_rate", "weight_decay", "adam_beta1",
               "adam_beta2", "adam_eps", "max_grad_norm", "warmup_ratio", "max_length", "seed", "num_workers"]
    for f in numeric + ["template", "trainable", "lr_scheduler", "warmup_rounding", "group_by_modality_length",
                        "mixed_precision", "dataset"]:
        src = r.sources[f]
        assert script in src or src.startswith("Hugging Face Trainer default"), (f, src)
        assert f == "dataset" or "paper" not in src, (f, src)
    for f in numeric:
        assert getattr(r, f) in _numbers(r.sources[f]), (f, getattr(r, f), r.sources[f])
    assert "VL-Mamba paper" in r.sources["dataset"] and script in r.source and "c121f04" in r.source
    per_device = 32 if stage == "align" else 16  # main's scripts: x 1 accumulation x 8 GPUs, never 16 x 4 x 4
    assert (r.per_device_batch_size, r.global_batch_size) == (per_device, per_device * 8)
    assert f"{per_device} per device x 1 accumulation x 8 GPUs" in r.sources["global_batch_size"]


def test_overrides_are_recorded_as_such_and_descriptions_are_not_settable():
    r = get_recipe("vl-mamba", "instruct", {"learning_rate": "1e-4"})
    assert r.learning_rate == 1e-4 and r.sources["learning_rate"] == "--set learning_rate=1e-4"
    assert "finetune.sh" in r.sources["epochs"]  # the rest keep their source
    assert "learning_rate" not in get_recipe("cobra", "align", {"epochs": "2"}).sources
    for k in ("source", "sources", "model"):
        with pytest.raises(ValueError, match=f"unknown recipe field '{k}'"):
            get_recipe("vl-mamba", "align", {k: "x"})
