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
