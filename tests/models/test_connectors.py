"""MultiModal Connector variants against the paper's equations (arXiv 2403.13600, Sec. 3.2)."""
import pytest
import torch
import torch.nn.functional as F

from mmeval.models.connectors import VSSL2Connector, VSSMLPConnector, build_connector


def _perturbed(m):
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m


def test_mlp_is_llava_mlp2x_gelu():
    torch.manual_seed(0)
    m = build_connector("mlp", 16, 24)
    assert sorted(m.state_dict()) == ["0.bias", "0.weight", "2.bias", "2.weight"]  # LLaVA's mm_projector names
    x = torch.randn(2, 9, 16)
    sd = m.state_dict()
    ref = F.linear(F.gelu(F.linear(x, sd["0.weight"], sd["0.bias"])), sd["2.weight"], sd["2.bias"])
    torch.testing.assert_close(m(x), ref)
    assert sd["2.weight"].shape == (24, 24)


@pytest.mark.parametrize("scan", ["bsm", "csm"])
def test_vss_mlp_equation(scan):
    torch.manual_seed(0)
    m = _perturbed(build_connector("vss-mlp", 16, 24, scan, {"d_state": 4, "kernel": "ref"}))
    assert isinstance(m, VSSMLPConnector)
    assert m.vss.dim == 16 and m.vss.n_routes == (2 if scan == "bsm" else 4)  # VSS on the vision width
    x = torch.randn(2, 9, 16)
    v_scan = m.vss(x)
    n = F.layer_norm(v_scan + x, (16,), m.norm.weight, m.norm.bias, m.norm.eps)
    sd = m.mlp.state_dict()
    ref = F.linear(F.gelu(F.linear(n, sd["0.weight"], sd["0.bias"])), sd["2.weight"], sd["2.bias"])
    out = m(x)
    assert out.shape == (2, 9, 24)
    torch.testing.assert_close(out, ref)
    # the skip connection matters: without it the output differs
    no_skip = m.mlp(m.norm(v_scan))
    assert (out - no_skip).abs().max() > 1e-4


@pytest.mark.parametrize("scan", ["bsm", "csm"])
def test_vss_l2_equation(scan):
    torch.manual_seed(0)
    m = _perturbed(build_connector("vss-l2", 16, 24, scan, {"d_state": 4, "kernel": "ref"}))
    assert isinstance(m, VSSL2Connector)
    assert m.vss.dim == 24  # VSS on the LM width, after the first linear layer
    x = torch.randn(2, 9, 16)
    v1 = F.linear(x, m.linear1.weight, m.linear1.bias)
    v_scan = m.vss(F.gelu(v1))
    n = F.layer_norm(v_scan + v1, (24,), m.norm.weight, m.norm.bias, m.norm.eps)
    ref = F.linear(n, m.linear2.weight, m.linear2.bias)
    torch.testing.assert_close(m(x), ref)
    assert sorted({k.split(".")[0] for k in m.state_dict()}) == ["linear1", "linear2", "norm", "vss"]


def test_unknown_connector():
    with pytest.raises(ValueError, match="mmc must be one of"):
        build_connector("qformer", 8, 8)
