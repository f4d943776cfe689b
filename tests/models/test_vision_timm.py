import numpy as np
import pytest
import timm
import torch
from PIL import Image

from mmeval.errors import CheckpointError
from mmeval.models.vision_timm import (
    TINY_IMAGE_SIZE,
    VisionBackbone,
    build_tower_transform,
    find_tower_weights,
    save_vision_weights,
)

S = TINY_IMAGE_SIZE


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return VisionBackbone(image_size=S, tiny=True).eval()


def _image(w=61, h=37, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_fused_features_are_second_to_last_block_dino_first(tiny):
    pv = {k: v[None] for k, v in tiny.image_transform(_image()).items()}
    out = tiny(pv)
    dino, siglip = tiny.towers["dino"].model, tiny.towers["siglip"].model
    assert out.shape == (1, 9, 32 + 48) and tiny.embed_dim == 80 and tiny.num_patches == 9
    ref_d = dino.get_intermediate_layers(pv["dino"], n=[len(dino.blocks) - 2])[0]
    ref_s = siglip.get_intermediate_layers(pv["siglip"], n=[len(siglip.blocks) - 2])[0]
    torch.testing.assert_close(out[..., :32], ref_d)
    torch.testing.assert_close(out[..., 32:], ref_s)
    # not the last block, and prefix tokens (CLS + 4 registers) removed for DINOv2
    last_d = dino.get_intermediate_layers(pv["dino"], n=[len(dino.blocks) - 1])[0]
    assert not torch.allclose(out[..., :32], last_d)
    assert dino.num_prefix_tokens == 5 and siglip.num_prefix_tokens == 0


def test_full_size_definitions():
    with torch.device("meta"):
        vb = VisionBackbone("dinosiglip-vit-so-384px", 384)
    assert vb.embed_dim == 1024 + 1152 and vb.num_patches == 27 * 27
    assert [t.feature_layer for t in vb.towers.values()] == [22, 25]  # 24- and 27-block ViTs
    assert list(vb.towers) == ["dino", "siglip"]


def _timm_transform(model, size, **cfg_over):
    cfg = dict(timm.data.resolve_model_data_config(model))
    cfg["input_size"] = (3, size, size)
    cfg.update(cfg_over)
    return timm.data.create_transform(**cfg, is_training=False)


def test_transforms_match_timm(tiny):
    img = _image()
    dino, siglip = tiny.towers["dino"].model, tiny.towers["siglip"].model
    # resize-crop == timm's eval transform (SigLIP with crop_pct brought to 1.0, as Cobra does)
    crop = {k: build_tower_transform(t.model, S, "resize-crop")(img) for k, t in tiny.towers.items()}
    torch.testing.assert_close(crop["dino"], _timm_transform(dino, S)(img))
    torch.testing.assert_close(crop["siglip"], _timm_transform(siglip, S, crop_pct=1.0)(img))
    # resize-naive (cobra+3b): squash to S x S, then timm's normalisation; on a square image == timm
    out = tiny.image_transform(img)
    assert set(out) == {"dino", "siglip"} and all(v.shape == (3, S, S) for v in out.values())
    sq = _image(50, 50, seed=1)
    torch.testing.assert_close(tiny.image_transform(sq)["dino"], _timm_transform(dino, S)(sq))
    resized = np.asarray(img.resize((S, S), Image.BICUBIC), dtype=np.float32) / 255.0
    for k, mean, std in (("dino", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), ("siglip", (0.5,) * 3, (0.5,) * 3)):
        ref = (torch.from_numpy(resized).permute(2, 0, 1) - torch.tensor(mean)[:, None, None]) \
            / torch.tensor(std)[:, None, None]
        assert (out[k] - ref).abs().mean() < 0.05  # PIL vs torchvision bicubic differ slightly
        assert not torch.allclose(out[k], crop[k])  # naive squash != resize + center crop


def test_letterbox_pads_with_mean_colour(tiny):
    img = Image.new("RGB", (40, 20), (255, 255, 255))
    vb = VisionBackbone(image_size=S, tiny=True, image_resize_strategy="letterbox")
    out = vb.image_transform(img)
    for k in ("dino", "siglip"):
        t = out[k]
        assert t.shape == (3, S, S)
        assert t[:, 0, :].abs().max() < 0.05  # the padded top rows normalise to ~0
        assert t[:, S // 2, :].min() > 0.99  # the white middle stays white (>= 1 after normalising)
    with pytest.raises(ValueError, match="resize-naive"):
        VisionBackbone(image_size=S, tiny=True, image_resize_strategy="squash")


def test_weights_from_local_files(tmp_path, tiny):
    save_vision_weights(tiny, tmp_path / "v")
    loaded = VisionBackbone(image_size=S, tiny=True, weights=tmp_path / "v").eval()
    pv = {k: v[None] for k, v in tiny.image_transform(_image()).items()}
    torch.testing.assert_close(loaded(pv), tiny(pv))
    # an HF timm snapshot layout is found too
    snap = tmp_path / "hub" / "vit_so400m_patch14_siglip_384.webli"
    snap.mkdir(parents=True)
    (tmp_path / "v" / "siglip.safetensors").rename(snap / "model.safetensors")
    assert find_tower_weights(tmp_path / "hub", "siglip", "vit_so400m_patch14_siglip_384") \
        == str(snap / "model.safetensors")
    with pytest.raises(CheckpointError, match="siglip"):
        VisionBackbone(image_size=S, tiny=True, weights=tmp_path / "v")


def test_position_embeddings_resampled_on_load(tmp_path):
    # timm's loader resamples DINOv2's position embeddings to the requested size (518 -> 384 for Cobra)
    torch.manual_seed(0)
    big = VisionBackbone("siglip-vit-so400m-384px", image_size=56, tiny=True)
    save_vision_weights(big, tmp_path)
    small = VisionBackbone("siglip-vit-so400m-384px", image_size=S, tiny=True, weights=tmp_path)
    assert small.towers["siglip"].model.pos_embed.shape[1] == 9
    out = small(torch.randn(1, 3, S, S))
    assert out.shape == (1, 9, 48)
