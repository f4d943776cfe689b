"""VSS scan orders (hand-written 3x3 permutations), merge as their inverse, and the VSS layer
against a per-route reference that scans each direction on its own."""
import torch
import torch.nn.functional as F

from mmeval.models.mamba.ops import selective_scan_ref
from mmeval.models.vss import VSS, merge, scan, scan_orders

# 3x3 grid, row-major indices:
# 0 1 2
# 3 4 5
# 6 7 8
ROW = [0, 1, 2, 3, 4, 5, 6, 7, 8]
COL = [0, 3, 6, 1, 4, 7, 2, 5, 8]
ROW_REV = [8, 7, 6, 5, 4, 3, 2, 1, 0]
COL_REV = [8, 5, 2, 7, 4, 1, 6, 3, 0]


def test_scan_orders_3x3_by_hand():
    assert scan_orders(3, 3, "bsm").tolist() == [ROW, ROW_REV]
    assert scan_orders(3, 3, "csm").tolist() == [ROW, COL, ROW_REV, COL_REV]


def test_scan_orders_rectangular():
    # 2 rows x 3 cols: 0 1 2 / 3 4 5; column-major reads 0 3 1 4 2 5
    assert scan_orders(2, 3, "csm").tolist() == [[0, 1, 2, 3, 4, 5], [0, 3, 1, 4, 2, 5],
                                                 [5, 4, 3, 2, 1, 0], [5, 2, 4, 1, 3, 0]]


def test_scan_produces_the_sequences_and_merge_inverts():
    x = torch.arange(9.0).view(1, 1, 9) + 100 * torch.arange(2.0).view(1, 2, 1)  # [B=1, C=2, L=9]
    for mode, routes in (("bsm", [ROW, ROW_REV]), ("csm", [ROW, COL, ROW_REV, COL_REV])):
        o = scan_orders(3, 3, mode)
        seqs = scan(x, o)
        assert seqs.shape == (1, len(routes), 2, 9)
        for k, r in enumerate(routes):
            assert seqs[0, k, 0].tolist() == [float(i) for i in r]
            assert seqs[0, k, 1].tolist() == [100.0 + i for i in r]
        back = merge(seqs, o, reduce="none")
        assert torch.equal(back, x.unsqueeze(1).expand_as(back))
        assert torch.equal(merge(seqs, o), x * len(routes))


def _reference_vss(m: VSS, x: torch.Tensor) -> torch.Tensor:
    """Each route scanned on its own with its own parameters, put back, summed."""
    B, L, _ = x.shape
    h = w = int(L ** 0.5)
    xs, z = m.in_proj(x).chunk(2, dim=-1)
    xs = F.silu(m.conv2d(xs.transpose(1, 2).reshape(B, m.d_inner, h, w))).reshape(B, m.d_inner, L)
    orders = scan_orders(h, w, m.scan_mode)
    total = 0
    for k in range(m.n_routes):
        u = xs[:, :, orders[k]]
        proj = torch.einsum("cd,bdl->bcl", m.x_proj_weight[k], u)
        dt, Bm, Cm = proj.split([m.dt_rank, m.d_state, m.d_state], dim=1)
        dt = torch.einsum("dr,brl->bdl", m.dt_proj_weight[k], dt)
        y = selective_scan_ref(u, dt, -torch.exp(m.A_log[k]), Bm, Cm, D=m.D[k], delta_bias=m.dt_proj_bias[k],
                               delta_softplus=True)
        back = torch.empty_like(y)
        back[:, :, orders[k]] = y
        total = total + back
    y = m.out_norm(total.transpose(1, 2)) * F.silu(z)
    return m.out_proj(y)


def test_vss_matches_per_route_reference():
    torch.manual_seed(0)
    for mode in ("bsm", "csm"):
        m = VSS(12, scan_mode=mode, d_state=4, kernel="ref")
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn_like(p) * 0.1)  # routes must differ
        x = torch.randn(2, 9, 12)
        out = m(x)
        assert out.shape == (2, 9, 12)
        torch.testing.assert_close(out, _reference_vss(m, x), rtol=1e-4, atol=1e-5)


def test_vss_sees_both_ends_of_the_grid():
    """The backward route carries the last patch into the first one (no conv neighbourhood here)."""
    torch.manual_seed(1)
    x = torch.randn(1, 25, 8)
    x2 = x.clone()
    x2[0, 24] += 1.0
    for mode in ("bsm", "csm"):
        m = VSS(8, scan_mode=mode, d_state=4, kernel="ref")
        assert (m(x)[0, 0] - m(x2)[0, 0]).abs().max() > 1e-6


def test_a_log_and_d_stay_float32_as_in_mamba_ssm():
    """mamba_ssm creates A_log and D in fp32 whatever the dtype (the step bias takes the model dtype);
    a later .to()/.half()/.bfloat16() must not round them (log 3 = 1.0986 would become 1.1016 in bf16)."""
    m = VSS(8, d_state=4, kernel="ref", dtype=torch.bfloat16)
    exact = torch.log(torch.arange(1, 5, dtype=torch.float32)).expand(2, m.d_inner, 4)
    assert (m.A_log.dtype, m.D.dtype) == (torch.float32, torch.float32)
    assert m.dt_proj_bias.dtype == m.x_proj_weight.dtype == m.in_proj.weight.dtype == torch.bfloat16
    assert torch.equal(m.A_log, exact) and torch.equal(m.D, torch.ones(2, m.d_inner))
    f = VSS(8, d_state=4, kernel="ref")
    with torch.no_grad():
        f.D.add_(torch.randn_like(f.D) * 1e-3)  # values bf16 cannot hold
    d_before = f.D.detach().clone()
    f.D.grad = torch.ones_like(f.D)
    for convert in (lambda mod: mod.to(torch.bfloat16), lambda mod: mod.half(),
                    lambda mod: mod.to("cpu", torch.float16)):
        convert(f)
        assert (f.A_log.dtype, f.D.dtype, f.D.grad.dtype) == (torch.float32,) * 3
        assert torch.equal(f.A_log, exact) and torch.equal(f.D, d_before)
        assert f.dt_proj_bias.dtype in (torch.bfloat16, torch.float16)
        assert f.out_proj.weight.dtype == f.dt_proj_bias.dtype
    assert isinstance(f.A_log, torch.nn.Parameter) and f.A_log.requires_grad
    f.double()  # upcasting is not blocked
    assert f.A_log.dtype == f.out_proj.weight.dtype == torch.float64


def test_bf16_vss_is_close_to_fp32():
    """The bf16 layer (fp32 A_log/D, bf16 rest) against the same weights in fp32."""
    torch.manual_seed(2)
    f = VSS(16, scan_mode="csm", d_state=4, kernel="ref")
    b = VSS(16, scan_mode="csm", d_state=4, kernel="ref", dtype=torch.bfloat16)
    b.load_state_dict(f.state_dict())
    assert b.A_log.dtype == torch.float32 and torch.equal(b.A_log, f.A_log)
    x = torch.randn(2, 16, 16)
    torch.testing.assert_close(b(x.bfloat16()).float(), f(x), rtol=0.05, atol=0.05)
