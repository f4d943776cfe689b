"""End-to-end finetuning of the real tiny models on CPU."""
import pytest
import torch

from mmeval.finetune.collate import Collator
from mmeval.finetune.data import ConversationDataset
from mmeval.finetune.loop import finetune, spawn_finetune, token_loss_sum
from mmeval.finetune.recipes import get_recipe
from mmeval.finetune.specs import get_spec
from tests.finetune.helpers import eight_samples, vl_mamba_word_tokenizer

# Image-blind floor: every sample has the same text and 2 target tokens (one answer word out of 8
# equiprobable ones, then EOS). A model that ignores the image can at best reach
# (ln 8 + 0) / 2 = 1.04 nats per target token; falling below 0.35 means it memorised image -> answer.
OVERFIT_THRESHOLD = 0.35


def _recipe(model, **kw):
    base = dict(global_batch_size="8", per_device_batch_size="8", learning_rate="3e-2", warmup_ratio="0.1",
                num_workers="0", seed="0")
    base.update({k: str(v) for k, v in kw.items()})
    return get_recipe(model, "instruct", base)


def _tiny_vl_mamba():
    from mmeval.models.vl_mamba import VLMamba, VLMambaConfig

    torch.manual_seed(0)
    return VLMamba(VLMambaConfig(tiny=True)), vl_mamba_word_tokenizer()


def _logits(spec_name, model, tok, data, image_dir):
    spec = get_spec(spec_name)
    ds = ConversationDataset(data, image_dir, spec.formatter(model, tok, "chat", 2048), spec.image_transform(model))
    batch = Collator(spec.pad_id(tok), spec.image_first)([ds[i] for i in range(len(ds))])
    model.eval().requires_grad_(False)  # the LM's reference path differs (last-bit) with/without grad-tracking weights
    with torch.no_grad():
        out = spec.forward(model, batch, torch.device("cpu"))
    return out


@pytest.mark.parametrize("name", ["cobra", "vl-mamba"])
def test_tiny_model_overfits_and_reloads_through_adapter(name, tmp_path):
    data = eight_samples(tmp_path)
    kw = {} if name == "cobra" else dict(zip(("model", "tokenizer"), _tiny_vl_mamba(), strict=True))
    res = finetune(name, _recipe(name), data, tmp_path, tmp_path / "out", tiny=True, max_steps=40, progress=False, **kw)
    assert res.losses[0] > 2.0
    assert res.losses[-1] < OVERFIT_THRESHOLD, res.losses
    # the loop's loss (sum over target tokens / count) is the model's own mean next-token loss
    end = _logits(name, res.model, res.tokenizer, data, tmp_path)
    s, n = token_loss_sum(end.logits, end.labels, get_spec(name).loss_vocab(res.model))
    assert n == 16 and abs(float(s) / n - float(end.loss)) < 1e-5
    # the released-layout checkpoint loads back through the model's adapter with the same logits
    if name == "cobra":
        from model_adapters.cobra import CobraAdapter

        assert (tmp_path / "out" / "checkpoints" / "latest-checkpoint.pt").is_file()
        a = CobraAdapter.from_args({"checkpoint": str(tmp_path / "out"), "vision": str(tmp_path / "out" / "vision")})
    else:
        from model_adapters.vl_mamba import VLMambaAdapter

        assert (tmp_path / "out" / "model.safetensors").is_file()
        a = VLMambaAdapter.from_args({"checkpoint": str(tmp_path / "out")})
    again = _logits(name, a.model, a.tokenizer, data, tmp_path)
    assert torch.equal(again.logits, end.logits)
    assert (tmp_path / "out" / "trainer_state.pt").is_file()


def test_resume_continues_the_same_loss_curve(tmp_path):
    data = eight_samples(tmp_path, text_only=2)  # 10 rows, 3 global batches of 4 per epoch
    r = _recipe("cobra", global_batch_size=4, per_device_batch_size=2, learning_rate="1e-2", num_workers=2)
    full = finetune("cobra", r, data, tmp_path, tmp_path / "a", tiny=True, max_steps=7, progress=False)
    part = finetune("cobra", r, data, tmp_path, tmp_path / "b", tiny=True, max_steps=7, stop_after=4, progress=False)
    assert part.step == 4 and part.last_checkpoint.name == "checkpoint-000004"
    assert part.losses == full.losses[:4]
    rest = finetune("cobra", r, data, tmp_path, tmp_path / "b", resume="auto", progress=False)
    assert rest.step == 7
    assert rest.losses == full.losses  # exactly equal floats (CPU, fp32)
    a = _logits("cobra", full.model, full.tokenizer, data, tmp_path).logits
    b = _logits("cobra", rest.model, rest.tokenizer, data, tmp_path).logits
    assert torch.equal(a, b)


@pytest.mark.slow  # torchrun with two processes
def test_two_process_ddp_matches_one_process(tmp_path):
    data = eight_samples(tmp_path, text_only=4)  # image and text-only batches (unused projector under DDP)
    r1 = _recipe("cobra", per_device_batch_size=2, learning_rate="1e-2")  # 1 process x 4 accumulation steps
    one = finetune("cobra", r1, data, tmp_path, tmp_path / "one", tiny=True, max_steps=3, progress=False)
    two = spawn_finetune(2, model_name="cobra", recipe=r1, data=data, image_dir=tmp_path, output_dir=tmp_path / "two",
                         tiny=True, max_steps=3, strategy="ddp", progress=False)  # 2 processes x 2 accumulation
    assert len(two["losses"]) == 3
    for a, b in zip(one.losses, two["losses"], strict=True):
        assert abs(a - b) < 1e-6, (one.losses, two["losses"])
    assert (tmp_path / "two" / "checkpoints" / "latest-checkpoint.pt").is_file()


@pytest.mark.slow  # torchrun with two processes
def test_two_process_fsdp_matches_one_process(tmp_path):
    data = eight_samples(tmp_path)
    r1 = _recipe("cobra", per_device_batch_size=2, learning_rate="1e-2")
    one = finetune("cobra", r1, data, tmp_path, tmp_path / "one", tiny=True, max_steps=2, progress=False)
    two = spawn_finetune(2, model_name="cobra", recipe=r1, data=data, image_dir=tmp_path, output_dir=tmp_path / "two",
                         tiny=True, max_steps=2, strategy="fsdp", progress=False)
    for a, b in zip(one.losses, two["losses"], strict=True):
        assert abs(a - b) < 1e-6, (one.losses, two["losses"])
    # the gathered full weights were saved in Cobra's layout: they reload and match the 1-process model
    from mmeval.models.cobra import load_cobra

    m, _ = load_cobra(tmp_path / "two", vision_weights=str(tmp_path / "two" / "vision"))
    for k, v in one.model.lm.state_dict().items():
        assert torch.allclose(v, m.lm.state_dict()[k], atol=1e-5), k


def test_image_position_trains_saves_and_evaluates_the_same(tmp_path):
    """A model finetuned with image_position=first is saved with it and evaluated with it by default: the
    adapter's prompt ids are the training ids; `--set image_position=` overrides an init checkpoint's."""
    from mmeval.models.vl_mamba import IMAGE_TOKEN_INDEX, VLMamba, VLMambaConfig
    from model_adapters.vl_mamba import VLMambaAdapter
    from tests.finetune.helpers import training_prompt_ids

    data = eight_samples(tmp_path)
    torch.manual_seed(0)
    model = VLMamba(VLMambaConfig(tiny=True, mmc="mlp", image_position="first"))
    res = finetune("vl-mamba", _recipe("vl-mamba"), data, tmp_path, tmp_path / "out", tiny=True, max_steps=1,
                   progress=False, model=model, tokenizer=vl_mamba_word_tokenizer())
    a = VLMambaAdapter.from_args({"checkpoint": str(tmp_path / "out")})
    assert a.model.cfg.image_position == "first"
    split = a.split_prompt("What color is the image ?", True)
    assert split.before_image == [0]
    assert split.before_image + [IMAGE_TOKEN_INDEX] + split.after_image == \
        training_prompt_ids("vl-mamba", res.model, res.tokenizer, "What color is the image ?", True)
    spec = get_spec("vl-mamba")
    back, _ = spec.build(True, str(tmp_path / "out"), {"image_position": "llava"}, "cpu", 0, "instruct")
    assert back.cfg.image_position == "llava"
    assert spec.build(True, str(tmp_path / "out"), {}, "cpu", 0, "instruct")[0].cfg.image_position == "first"
