"""The proxy-moment transfer (``verified_lora/fast/proxy_moments.py``, (P0)-(P4)) against the run's own moments.

The certificate bounds every per-row moment of the run's ``pi~`` from a cheap polynomial's moments. Here the
run's own moments (a pass at the run's rank, what the certificate used to compute) must lie inside the
transferred bounds, row by row; and the same bounds with ``eta`` dropped must miss some of them (the
proxy's moments differ from the run's by ``O(eps^)``, far above the float errors), so the test fails if
the transfer were left out.
"""

from __future__ import annotations

import numpy as np
import pytest

from verified_lora import Adapter, LoraAttention
from verified_lora.bounds import _approx_api as api
from verified_lora.bounds import score_bound
from verified_lora.fast.aposteriori import _row_terms, _scalars, _x_rms
from verified_lora.fast.proxy_moments import build_proxy, eta, item_moments, rounding_rows
from verified_lora.fast.rounding_bound import _proj


def _problem(seed: int, L: int = 48, dm: int = 4, R: float = 1.5) -> LoraAttention:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((L, dm)) + 0.7          # nonzero means: means and spreads both matter
    ads = {k: Adapter(a=rng.standard_normal((2, 3)), b=rng.standard_normal((dm, 2))) for k in "QKV"}
    p = LoraAttention(x_q=x, y=rng.standard_normal((L, 3)), w_q=rng.standard_normal((dm, 3)),
                      w_k=rng.standard_normal((dm, 3)), w_v=rng.standard_normal((dm, 3)), adapters=ads, alpha=2.0)
    return p.replace(x_q=p.x_q * np.sqrt(R / score_bound(p).R))


def _bounds(p, proxy, it, with_eta: bool):
    it = dict(it) if with_eta else {k: v for k, v in it.items() if k != "eta"}
    t = _row_terms(it, "factored", *_scalars("factored", 1e-12, 1e-12, 1e-12), proxy.e_rel)
    xk_row, xv_row = _x_rms(it["moments"], it["x_k"], it["x_v"], proxy.e_rel, t["tr"])
    return t, xk_row, xv_row


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_transferred_bounds_contain_the_runs_own_moments_and_need_eta(seed):
    p = _problem(seed)
    R = float(score_bound(p).R)
    proxy = build_proxy(p, R)
    assert proxy is not None and proxy.eps_A <= 1e-2
    run = api.certify("minimax", 10, R)
    own = item_moments(p, list(run.polynomial.coeffs))[0]           # the run's pi~ moments (float64)
    xq, xk, xv, y = (np.asarray(a, dtype=np.float64) for a in next(iter(p.items())))
    it = dict(x_q=xq, x_k=xk, x_v=xv, y=y, Pm=_proj(p, xq, "Q")[0], Km=_proj(p, xk, "K")[0],
              Vm=_proj(p, xv, "V")[0], moments=proxy.moments[0],
              eta=np.full(p.L, float(eta(run.eps_A, proxy.eps_A))))
    sd_own = np.sqrt(np.maximum(own["v2"] - own["v1"] ** 2, 0.0))
    sk_own = np.sqrt(np.maximum(own["k2"] - own["k1"] ** 2, 0.0))
    c_own = np.abs(own["v1"] - y)
    nk = xk.shape[1]
    rms_own = np.sqrt(own["x2"][:, :2 * nk])
    slack = 1 + 1e-9                                                  # the own pass's float error, generously

    t, xk_row, xv_row = _bounds(p, proxy, it, with_eta=True)
    assert np.all(sd_own <= t["sd"] * slack)
    assert np.all(sk_own <= t["sk"] * slack)
    assert np.all(c_own <= t["cabs"] * slack)
    assert np.all(rms_own <= np.concatenate([xk_row, xv_row], axis=1) * slack)
    rows = rounding_rows(proxy, (dict(Vm=it["Vm"], y=y),), run.eps_A, False)[0]
    assert np.all(own["D"] >= rows["D_lo"])
    assert np.all(c_own <= rows["cabs"] * slack) and np.all(np.abs(own["v1"]) <= rows["fvabs"] * slack)

    # eta dropped: the proxy's own moments are not bounds for the run's
    t0, xk0, xv0 = _bounds(p, proxy, it, with_eta=False)
    missed = (np.any(sd_own > t0["sd"] * slack) or np.any(sk_own > t0["sk"] * slack)
              or np.any(c_own > t0["cabs"] * slack)
              or np.any(rms_own > np.concatenate([xk0, xv0], axis=1) * slack))
    assert missed, "without eta the proxy's moments already bound the run's: the test could not catch a dropped eta"


def test_eta_is_zero_only_for_the_proxy_itself_and_monotone():
    assert 0.0 <= float(eta(0.0, 0.0)) <= 1e-14          # upward rounding only
    e = float(eta(1e-3, 1e-2))
    assert e >= (1.001 * 1.01) / (0.999 * 0.99) - 1
    assert float(eta(1e-3, 2e-2)) > e
    assert np.isinf(eta(1.0, 1e-2))
