import pytest
import torch

from mmeval.models.projectors import (
    FusedLDPProjector,
    FusedMLPProjector,
    LDPProjector,
    LinearProjector,
    MLPProjector,
    PosInjectLayer,
    TokenDownLayer,
    build_projector,
    projector_type,
)

V, D = 20, 12  # vision dim, llm dim

# Cobra's state-dict keys (cobra/util/nn_utils.py), which its released checkpoints use
EXPECTED_KEYS = {
    "linear": {"projector.weight": (D, V), "projector.bias": (D,)},
    "gelu-mlp": {"projector.0.weight": (D, V), "projector.0.bias": (D,),
                 "projector.2.weight": (D, D), "projector.2.bias": (D,)},
    "fused-gelu-mlp": {"projector.0.weight": (4 * V, V), "projector.0.bias": (4 * V,),
                       "projector.2.weight": (D, 4 * V), "projector.2.bias": (D,),
                       "projector.4.weight": (D, D), "projector.4.bias": (D,)},
    "ldpnet": {"projector.0.weight": (D, V), "projector.0.bias": (D,),
               "projector.2.weight": (D, D), "projector.2.bias": (D,),
               "projector.4.peg.0.weight": (D, 1, 3, 3), "projector.4.peg.0.bias": (D,)},
    "fused-ldpnet": {"projector.0.weight": (4 * V, V), "projector.0.bias": (4 * V,),
                     "projector.2.weight": (D, 4 * V), "projector.2.bias": (D,),
                     "projector.4.peg.0.weight": (D, 1, 3, 3), "projector.4.peg.0.bias": (D,)},
}


@pytest.mark.parametrize("kind", list(EXPECTED_KEYS))
def test_keys_shapes_and_forward(kind):
    p = build_projector(kind, V, D, ldp_grid=2, seed=0)
    assert {k: tuple(v.shape) for k, v in p.state_dict().items()} == EXPECTED_KEYS[kind]
    x = torch.randn(3, 9, V)  # 3x3 patch grid
    y = p(x)
    n_out = 4 if "ldp" in kind else 9
    assert y.shape == (3, n_out, D)
    assert p.num_output_tokens(9) == n_out
    assert torch.isfinite(y).all()


def test_fused_mlp_matches_manual_maths():
    p = FusedMLPProjector(V, D)
    x = torch.randn(2, 5, V)
    l0, l2, l4 = p.projector[0], p.projector[2], p.projector[4]
    gelu = torch.nn.functional.gelu
    ref = l4(gelu(l2(gelu(l0(x)))))
    torch.testing.assert_close(p(x), ref)


def test_full_size_fused_dims():
    # cobra+3b: DINOv2-L (1024) + SigLIP-SO400M (1152) = 2176 -> 8704 -> 2560 -> 2560
    with torch.device("meta"):
        p = build_projector("no-align+fused-gelu-mlp", 1024 + 1152, 2560)
    shapes = [tuple(m.weight.shape) for m in p.projector if isinstance(m, torch.nn.Linear)]
    assert shapes == [(8704, 2176), (2560, 8704), (2560, 2560)]


@pytest.mark.parametrize("spec,kind", [
    ("no-align+fused-gelu-mlp", "fused-gelu-mlp"), ("no-align+gelu-mlp", "gelu-mlp"), ("gelu-mlp", "gelu-mlp"),
    ("linear", "linear"), ("no-align+fused-ldpnet", "fused-ldpnet"), ("ldpnet", "ldpnet")])
def test_arch_specifier_parsing(spec, kind):
    assert projector_type(spec) == kind
    cls = {"linear": LinearProjector, "gelu-mlp": MLPProjector, "fused-gelu-mlp": FusedMLPProjector,
           "ldpnet": LDPProjector, "fused-ldpnet": FusedLDPProjector}[kind]
    assert type(build_projector(spec, V, D, ldp_grid=2)) is cls


def test_unknown_projector_lists_known():
    with pytest.raises(ValueError, match="fused-gelu-mlp"):
        projector_type("qformer")


def test_seeded_init_is_reproducible_and_leaves_global_rng():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = build_projector("fused-gelu-mlp", V, D, seed=V)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = build_projector("fused-gelu-mlp", V, D, seed=V)
    c = build_projector("fused-gelu-mlp", V, D, seed=V + 1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(a.projector[0].weight, c.projector[0].weight)


def test_ldp_layers():
    x = torch.arange(2 * 16 * 3, dtype=torch.float32).reshape(2, 16, 3)  # 4x4 grid
    down = TokenDownLayer((2, 2))(x)
    grid = x.transpose(1, 2).reshape(2, 3, 4, 4)
    ref = torch.nn.functional.avg_pool2d(grid, 2).flatten(2).transpose(1, 2)
    torch.testing.assert_close(down, ref)
    peg = PosInjectLayer(3, 3)
    torch.nn.init.zeros_(peg.peg[0].weight)
    torch.nn.init.zeros_(peg.peg[0].bias)
    torch.testing.assert_close(peg(x), x)  # residual: zero conv is the identity
    with pytest.raises(ValueError, match="square"):
        TokenDownLayer((2, 2))(torch.randn(1, 10, 3))
