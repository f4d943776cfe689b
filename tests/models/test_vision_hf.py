"""Vision towers (LLaVA-style features, published weight folders) and image preprocessing
against transformers' image processors configured as LLaVA uses them."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from mmeval.errors import CheckpointError
from mmeval.models.vision_hf import (
    CLIP_VIT_L_14_336,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    SIGLIP_SO400M_14_384,
    ImagePreprocess,
    VisionTower,
    load_vision_tower,
    resolve_folder,
    vision_config_dict,
)


def _random_image(w=317, h=200, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("encoder", ["clip", "siglip"])
def test_features_are_second_to_last_layer_patches(encoder):
    torch.manual_seed(0)
    t = VisionTower(vision_config_dict(encoder, tiny=True)).eval()
    x = torch.randn(2, 3, t.image_size, t.image_size)
    with torch.no_grad():
        feats = t(x)
        hs = t.model(pixel_values=x, output_hidden_states=True).hidden_states
    ref = hs[-2][:, 1:] if encoder == "clip" else hs[-2]  # CLIP drops its class token
    assert feats.shape == (2, t.num_patches, t.hidden_size)
    torch.testing.assert_close(feats, ref)
    assert not torch.allclose(feats, (hs[-1][:, 1:] if encoder == "clip" else hs[-1]))


def test_full_size_configs():
    with torch.device("meta"):
        clip = VisionTower(vision_config_dict("clip"))
        sig = VisionTower(vision_config_dict("siglip"))
    assert (clip.num_patches, clip.hidden_size) == (576, 1024)
    assert (sig.num_patches, sig.hidden_size) == (729, 1152)
    n_clip = sum(p.numel() for p in clip.parameters())
    n_sig = sum(p.numel() for p in sig.parameters())
    assert 300e6 < n_clip < 310e6, n_clip  # CLIP ViT-L/14-336 vision tower
    assert 410e6 < n_sig < 420e6, n_sig  # SigLIP-SO400M vision tower without its pooling head


@pytest.mark.parametrize("pad", [False, True])
def test_clip_preprocess_matches_transformers(pad):
    from transformers import CLIPImageProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    kw = dict(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}, resample=3,
              do_center_crop=True, image_mean=list(OPENAI_CLIP_MEAN), image_std=list(OPENAI_CLIP_STD))
    pp = ImagePreprocess.for_encoder("clip", 336, "pad" if pad else "none")
    img = _random_image()
    src = pp.expand2square(img) if pad else img
    ours = pp(img)
    assert ours.shape == (3, 336, 336)
    ref = torch.as_tensor(np.array(CLIPImageProcessorPil(**kw)(images=src, return_tensors="np")["pixel_values"][0]))
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)  # the PIL processor LLaVA used
    fast = torch.as_tensor(np.array(CLIPImageProcessor(**kw)(images=src, return_tensors="pt")["pixel_values"][0]))
    assert (ours - fast).abs().max() < 0.05  # torchvision resampling: within a few grey levels


@pytest.mark.parametrize("pad", [False, True])
def test_siglip_preprocess_matches_transformers(pad):
    from transformers import SiglipImageProcessor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    kw = dict(size={"height": 384, "width": 384}, resample=3, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    pp = ImagePreprocess.for_encoder("siglip", 384, "pad" if pad else "none")
    img = _random_image(seed=1)
    src = pp.expand2square(img) if pad else img
    ours = pp(img)
    assert ours.shape == (3, 384, 384)
    ref = torch.as_tensor(np.array(SiglipImageProcessorPil(**kw)(images=src, return_tensors="np")["pixel_values"][0]))
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    fast = torch.as_tensor(np.array(SiglipImageProcessor(**kw)(images=src, return_tensors="pt")["pixel_values"][0]))
    assert (ours - fast).abs().max() < 0.05


def test_pad_uses_mean_colour():
    pp = ImagePreprocess.for_encoder("clip", 336)
    sq = pp.expand2square(Image.new("RGB", (40, 10), (255, 0, 0)))
    assert sq.size == (40, 40)
    assert sq.getpixel((0, 0)) == (122, 116, 104)  # int(mean * 255), LLaVA's expand2square
    assert sq.getpixel((20, 20)) == (255, 0, 0)  # pasted centred: rows 15..24
    assert ImagePreprocess.for_encoder("siglip", 384).background == (127, 127, 127)


def _write_published_folder(tmp_path, encoder, tower, full_model=True):
    """A folder as the hub has it: a full CLIP/SigLIP checkpoint (vision_model.* and text_model.*)."""
    from safetensors.torch import save_file

    vc = dict(tower.config_dict)
    vc.pop("model_type")
    cfg = {"model_type": encoder, "vision_config": vc, "text_config": {}} if full_model else \
        dict(tower.config_dict)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    sd = {k: v.clone() for k, v in tower.published_state_dict().items()}
    if full_model:
        sd["text_model.embeddings.token_embedding.weight"] = torch.zeros(4, 4)
        sd["logit_scale"] = torch.zeros(())
    save_file(sd, str(tmp_path / "model.safetensors"))
    return tmp_path


@pytest.mark.parametrize("encoder", ["clip", "siglip"])
def test_load_published_folder(tmp_path, encoder):
    torch.manual_seed(0)
    src = VisionTower(vision_config_dict(encoder, tiny=True)).eval()
    folder = _write_published_folder(tmp_path, encoder, src)
    loaded = load_vision_tower(str(folder), expect=encoder).eval()
    x = torch.randn(1, 3, src.image_size, src.image_size)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), src(x))
    assert loaded.source == str(folder)
    with pytest.raises(CheckpointError, match="holds a"):
        load_vision_tower(str(folder), expect="siglip" if encoder == "clip" else "clip")


def test_missing_tower_weights_named(tmp_path):
    from safetensors.torch import load_file, save_file

    src = VisionTower(vision_config_dict("siglip", tiny=True))
    folder = _write_published_folder(tmp_path, "siglip", src)
    sd = load_file(str(folder / "model.safetensors"))
    del sd["vision_model.encoder.layers.1.mlp.fc1.weight"]
    save_file(sd, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="encoder.layers.1.mlp.fc1.weight"):
        load_vision_tower(str(folder))


def test_offline_hub_id_error_names_where_to_put_files(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MMEVAL_CHECKPOINTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(CheckpointError) as e:
        resolve_folder("google/siglip-so400m-patch14-384", "vision tower")
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "google--siglip-so400m-patch14-384") in msg


def test_shipped_configs_are_the_published_ones():
    assert CLIP_VIT_L_14_336["image_size"] == 336 and CLIP_VIT_L_14_336["patch_size"] == 14
    assert SIGLIP_SO400M_14_384["image_size"] == 384 and SIGLIP_SO400M_14_384["num_hidden_layers"] == 27
