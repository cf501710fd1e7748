"""z3 proofs of the claims the fast path's certificate makes about the arrays it returns.

The lemmas are stated in the docstring of ``verified_lora/fast/certificate.py``: the relative claim
``b / (max|G^| - b)`` (difference rounded down, ratio rounded up), the "rounding level" refusal,
the adapter chain ``s B^T G_W`` with the weight bound and ``gamma`` of the magnitudes, and the split
``bounds = approx + rounding``.

* ``fast-relative-claims``: ``|G^ - G| <= b`` entrywise and ``0 < low <= max|G^| - b``,
  ``rel >= b / low`` give ``max|G^ - G| <= rel max|G|`` (two entries directly; the max over any
  number of entries is attained at one of them); the old claim ``b / max|G^|`` is refuted.
* ``fast-adapter-chain``: ``|fl(s B^T G^_W) - s B^T G_W| <= |s| |B|^T |G^_W - G_W| + gamma |s| |B|^T |G^_W|``
  (per term), the entrywise split ``min(|s| |B|^T W_approx, A_chain) + |s| |B|^T W_round + gamma |s| |B|^T |G^_W|``
  (``A_chain``: ``verified_lora/fast/adapter_chain.py``, certificates ``fast-chain-*``) and the split of the bound.

Run: ``python -m verified_lora.proofs.fast_certificate``.
"""

from __future__ import annotations

import sympy as sp

from verified_lora.symbolic import prooftools as pt
from verified_lora.symbolic import smt
from verified_lora.symbolic.certificates import Certificate, register_proof, run_main

PAPER = {"iclr2025": "no lemma of the paper: the library's certificate of the fast (Section 3) gradient",
         "arxiv_v2": "same (not a paper claim)",
         "module": "verified_lora/fast/certificate.py"}


_r = pt.real_symbols


@register_proof("fast-relative-claims", title="relative claims b/(max|G^| - b) are sound", paper=PAPER)
def prove_relative() -> Certificate:
    g1, g2, h1, h2, b, low, rel, mx = _r("G_1 G_2 Gh_1 Gh_2 b low rel M")
    ent = [b >= 0, sp.Abs(h1 - g1) <= b, sp.Abs(h2 - g2) <= b]
    Mh = sp.Max(sp.Abs(h1), sp.Abs(h2))
    nq = smt.prove("max|G| >= max|G^| - b (2 entries)", ent, sp.Max(sp.Abs(g1), sp.Abs(g2)) >= Mh - b)
    err = sp.Max(sp.Abs(h1 - g1), sp.Abs(h2 - g2))
    nq += smt.prove("max|G^ - G| <= b (2 entries)", ent, err <= b)
    e, Gm = _r("err Gmax")
    scal = [b >= 0, e <= b, Gm >= mx - b, low > 0, low <= mx - b, rel * low >= b]
    nq += smt.prove("relative claim: err <= b, max|G| >= max|G^| - b >= low > 0, rel low >= b => err <= rel max|G|",
                    scal, e <= rel * Gm)
    nq += smt.prove("bound 0 certifies relative error 0", [sp.Abs(h1 - g1) <= 0, sp.Abs(h2 - g2) <= 0], sp.Eq(err, 0))
    rnd, tot = _r("rounding total")
    nq += smt.prove("rounding level: b >= rounding >= max|G^| => no positive low", [tot >= rnd, rnd >= mx, low <= mx - tot],
                    low <= 0)
    smt.refute("planted false (the float result treated as exact): max|G^ - G| <= (b / max|G^|) max|G|",
               ent + [Mh > 0], err * Mh <= b * sp.Max(sp.Abs(g1), sp.Abs(g2)))
    smt.refute("planted false (margin not required positive)", scal[:3] + [low <= mx - b, rel * low >= b], e <= rel * Gm)
    return Certificate(claim="fast-relative-claims", title="sound relative claims of the fast path",
                       statement=r"|\hat G-G|\le b,\ 0<\ell\le\max|\hat G|-b,\ \rho\ge b/\ell\Rightarrow"
                                 r"\max|\hat G-G|\le\rho\max|G|",
                       level="generic",
                       method=(f"z3 ({nq} unsat queries): the two max facts for two entries, then the scalar implication with "
                               "M = max|G^|; planted false variants (the former claim b/max|G^|, a margin not required "
                               "positive) refuted"),
                       scope="the max facts for two entries (any number on paper); the implication for all reals",
                       result="proved", expressions={"rel": b / (Mh - b)},
                       on_paper=("for any number of entries: max|G| >= |G_k| >= |G^_k| - b at the entry k of max|G^|, "
                                 "and every |G^_l - G_l| <= b <= rel low <= rel (max|G^| - b) <= rel max|G|",
                                 "rg.down / rg.div_up round the margin down and the ratio up, so the computed low and "
                                 "rel satisfy the hypotheses"))


@register_proof("fast-adapter-chain", title="the adapter chain s B^T G_W and the split approx + rounding", paper=PAPER)
def prove_adapter() -> Certificate:
    s, b1, g1, h1, t1, gam, w1 = _r("s B_k G_k Gh_k theta_k gamma W_k")
    hyps = [gam >= 0, sp.Abs(t1) <= gam, sp.Abs(h1 - g1) <= w1]
    computed = s * b1 * h1 * (1 + t1)
    bound = sp.Abs(s) * sp.Abs(b1) * w1 + gam * sp.Abs(s) * sp.Abs(b1 * h1)
    nq = smt.prove("adapter chain per term: |s B_k G^_k (1 + theta_k) - s B_k G_k| <= |s||B_k| W_k + gamma |s||B_k G^_k|",
                   hyps, sp.Abs(computed - s * b1 * g1) <= bound)
    smt.refute("planted false (gamma term dropped)", hyps, sp.Abs(computed - s * b1 * g1) <= sp.Abs(s) * sp.Abs(b1) * w1)
    x2, x13, xf, aa, ac, rr, gg = _r("X_2 X_13 X_fl W_approx A_chain R_round G_fl")
    nq += smt.prove("entrywise: |X_fl + X_13 + X_2| <= min(|s||B|^T W_approx, A_chain) + |s||B|^T W_round + gamma |s||B|^T|G^_W|",
                    [sp.Abs(x2) <= aa, sp.Abs(x2) <= ac, sp.Abs(x13) <= rr, sp.Abs(xf) <= gg],
                    sp.Abs(xf + x13 + x2) <= sp.Min(aa, ac) + rr + gg)
    smt.refute("planted false (the chain's own rounding dropped)", [sp.Abs(x2) <= aa, sp.Abs(x2) <= ac, sp.Abs(x13) <= rr,
                                                                    sp.Abs(xf) <= gg],
               sp.Abs(xf + x13 + x2) <= sp.Min(aa, ac) + rr)
    ap, tot, out, rnd, bd = _r("approx total out rounding bound")
    nq += smt.prove("split: rounding >= total - approx + out, bound >= approx + rounding => bound >= total + out",
                    [rnd >= tot - ap + out, bd >= ap + rnd], bd >= tot + out)
    return Certificate(claim="fast-adapter-chain", title="the adapter chain and the split of the bound",
                       statement=r"|\mathrm{fl}(sB^\top\hat G_W)-sB^\top G_W|\le\min(|s||B|^\top W_{approx},A_{chain})"
                                 r"+|s||B|^\top W_{round}+\gamma|s||B|^\top|\hat G_W|",
                       level="generic",
                       method=f"z3 ({nq} unsat queries): per term and the entrywise split with the min; planted false variants refuted",
                       scope="per term; any inner length on paper (fast-rounding-gamma)",
                       result="proved", expressions={"bound": bound},
                       on_paper=("for inner length n: each term carries one (1 + theta), |theta| <= gamma_{n+4} "
                                 "(products with s and the sum), so the per-term bound sums to the stated one",
                                 "G^_W - G_W = (1) + (2) + (3) (fast-rounding-inputs): X_13 = s B^T ((1) + (3)), bounded through "
                                 "|B|^T by the rounding part; X_2 = s B^T (2), bounded both by |s||B|^T W_approx and row by "
                                 "row by A_chain (fast-chain-q, fast-chain-k, fast-chain-v); X_fl the chain's own rounding"))


if __name__ == "__main__":
    raise SystemExit(run_main(__name__))
