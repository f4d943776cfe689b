"""Test helper: tiny random Mamba-1 LMs (importable by other test files; tests/models is on
sys.path under pytest's default rootdir-based imports)."""
import torch

from mmeval.models.mamba import MambaConfig, MambaLM


def tiny_config(**kw) -> MambaConfig:
    base = {"d_model": 32, "n_layer": 2, "vocab_size": 100, "d_state": 8, "d_conv": 4, "expand": 2,
            "pad_vocab_size_multiple": 8}
    base.update(kw)
    return MambaConfig(**base)


def tiny_model(seed: int = 0, noise: float = 0.1, **kw) -> MambaLM:
    """Random tiny model; every parameter (norms, A_log, D, biases) is perturbed so that no
    parameter keeps a symmetric initial value that could hide a bug."""
    torch.manual_seed(seed)
    m = MambaLM(tiny_config(**kw), kernel="ref")
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * noise)
    return m.eval()
