"""Remez exchange for the relative-error minimax polynomial of ``e^x`` on ``[-R, R]``.

We minimise ``max_x |P(x) e^{-x} - 1|`` over polynomials of degree ``g``. The functions
``x^t e^{-x}`` (t = 0..g) form a Haar system (``P(x) e^{-x}`` has at most ``g`` zeros), so the
best approximation is characterised by equioscillation at ``g + 2`` points (Chebyshev's
alternation theorem) and the Remez iteration converges.

Work is done in the Chebyshev variable ``s = x / R`` with ``P = sum_k c_k T_k(s)`` (well
conditioned). One iteration:

1. solve ``sum_k c_k T_k(s_i) e^{-R s_i} + (-1)^i E = 1`` on the reference ``s_0 < ... < s_{g+1}``;
2. locate the local extrema of ``e(s) = P(R s) e^{-R s} - 1`` on a dense Chebyshev grid, refined by
   safeguarded Newton on ``de/ds = 0``, i.e. on ``D(s) = P_s(s) - R P(s)`` (``P_s = dP/ds``);
3. exchange: keep an alternating subsequence of ``g + 2`` extrema of largest ``|e|``.

It stops when ``(max |e| - min_ref |e|) / max |e| < tol``.

Arithmetic: the transcendental values (``cos``, ``pi``, ``exp``) come from mpmath at the working
precision; the linear algebra and the polynomial evaluations run in binary fixed point on Python
integers (value ``v`` stored as ``round(v 2^F)``), which is ~30x faster than mpf objects and fully
deterministic. Nothing here is trusted: the rationalised polynomial is certified afterwards by
interval arithmetic (:mod:`.certify`).
"""

from __future__ import annotations

from fractions import Fraction

__all__ = ["remez_relative_exp"]


def _select_alternating(cands, n):
    """Alternating subsequence of ``n`` points with large ``|e|`` (``cands`` sorted by s)."""
    merged: list = []
    for s, e in cands:
        if e == 0:
            continue
        if merged and (merged[-1][1] > 0) == (e > 0):
            if abs(e) > abs(merged[-1][1]):
                merged[-1] = (s, e)
        else:
            merged.append((s, e))
    while len(merged) > n:
        if len(merged) - n == 1:
            if abs(merged[0][1]) < abs(merged[-1][1]):
                merged.pop(0)
            else:
                merged.pop()
            continue
        i = min(range(len(merged)), key=lambda j: abs(merged[j][1]))
        if i == 0 or i == len(merged) - 1:
            merged.pop(i)
            continue
        merged.pop(i)  # neighbours i-1 and i now share a sign: keep the larger
        if abs(merged[i - 1][1]) >= abs(merged[i][1]):
            merged.pop(i)
        else:
            merged.pop(i - 1)
    return merged


class _Fixed:
    """Binary fixed point with ``F`` fractional bits on Python ints."""

    def __init__(self, frac_bits: int):
        self.F = frac_bits
        self.one = 1 << frac_bits

    def mul(self, a: int, b: int) -> int:
        return (a * b) >> self.F

    def div(self, a: int, b: int) -> int:
        return (a << self.F) // b

    def clenshaw(self, c, s):
        """``sum_k c_k T_k(s)``."""
        F = self.F
        b1 = b2 = 0
        two_s = 2 * s
        for ck in reversed(c[1:]):
            b1, b2 = ck + ((two_s * b1) >> F) - b2, b1
        return c[0] + ((s * b1) >> F) - b2

    def solve(self, a, b):
        """Gaussian elimination with partial pivoting (``a`` is modified)."""
        n = len(a)
        m = [row[:] + [rhs] for row, rhs in zip(a, b)]
        for col in range(n):
            p = max(range(col, n), key=lambda r: abs(m[r][col]))
            m[col], m[p] = m[p], m[col]
            piv = m[col][col]
            if piv == 0:
                raise ZeroDivisionError("singular Remez system")
            prow = m[col]
            for r in range(col + 1, n):
                f = self.div(m[r][col], piv)
                if f:
                    row = m[r]
                    for j in range(col, n + 1):
                        row[j] -= (f * prow[j]) >> self.F
        x = [0] * n
        for i in range(n - 1, -1, -1):
            acc = m[i][n] - sum((m[i][j] * x[j]) >> self.F for j in range(i + 1, n))
            x[i] = self.div(acc, m[i][i])
        return x


def _cheb_derivative(c):
    """Chebyshev coefficients of ``d/ds sum_k c_k T_k(s)`` (exact on integers)."""
    g = len(c) - 1
    if g == 0:
        return [0]
    d = [0] * (g + 2)
    for k in range(g, 0, -1):
        d[k - 1] = d[k + 1] + 2 * k * c[k]
    d[0] //= 2
    return d[:g]


def remez_relative_exp(R: Fraction, g: int, prec: int, tol: float = 1e-7, maxiter: int = 60):
    """Chebyshev coefficients (in ``s = x/R``) of the relative-error minimax approximant.

    ``prec`` is the caller's working precision in bits (the polynomial layer passes
    :func:`.polynomials.working_precision`); the fixed-point arithmetic carries 64 bits more.

    Returns ``(cheb, reference, frac_bits)``: integer coefficients ``cheb[k]`` with
    ``c_k = cheb[k] / 2^frac_bits``, the final reference as exact rational ``x`` values, and the
    number of fractional bits.
    """
    import mpmath

    mp = mpmath.mp
    fx = _Fixed(prec + 64)
    tol_q = Fraction(tol)
    F = fx.F
    n = g + 2
    with mp.workprec(F + 32):
        rm = mp.mpf(R.numerator) / R.denominator
        scale = mp.mpf(2) ** F

        def to_fix(v) -> int:
            return int(mp.nint(v * scale))

        def wexp(s_fix: int) -> int:  # e^{-R s} in fixed point
            return to_fix(mp.exp(-rm * mp.mpf(s_fix) / scale))

        ref = [to_fix(-mp.cos(mp.pi * i / (n - 1))) for i in range(n)]
        m_grid = 2 * n + 16
        grid = [to_fix(-mp.cos(mp.pi * j / (m_grid - 1))) for j in range(m_grid)]
        grid[0], grid[-1] = -fx.one, fx.one
        w_grid = [wexp(s) for s in grid]
        cheb = None
        for _ in range(maxiter):
            rows, rhs = [], []
            for i, s in enumerate(ref):
                w = wexp(s)
                t_prev, t_cur = fx.one, s
                row = [w]
                for _k in range(1, g + 1):
                    row.append(fx.mul(t_cur, w))
                    t_prev, t_cur = t_cur, ((2 * s * t_cur) >> F) - t_prev
                row.append(fx.one if i % 2 == 0 else -fx.one)
                rows.append(row)
                rhs.append(fx.one)
            sol = fx.solve(rows, rhs)
            cheb = sol[: g + 1]
            dcheb = _cheb_derivative(cheb)
            ddcheb = _cheb_derivative(dcheb)
            r_fix = to_fix(rm)

            def err(s, w=None, cheb=cheb):
                return fx.mul(fx.clenshaw(cheb, s), wexp(s) if w is None else w) - fx.one

            def dfun(s, cheb=cheb, dcheb=dcheb):  # zero exactly where de/ds = 0
                return fx.clenshaw(dcheb, s) - fx.mul(r_fix, fx.clenshaw(cheb, s))

            def ddfun(s, dcheb=dcheb, ddcheb=ddcheb):
                return fx.clenshaw(ddcheb, s) - fx.mul(r_fix, fx.clenshaw(dcheb, s))

            # Grid: the fixed Chebyshev grid plus 8 points in every gap of the current reference
            # (the new extrema lie near the old reference points, wherever the weight puts them).
            extra = sorted({ref[i] + (ref[i + 1] - ref[i]) * j // 8 for i in range(n - 1) for j in range(1, 8)}
                           - set(grid))
            pts = sorted(list(zip(grid, w_grid)) + [(s, wexp(s)) for s in extra])
            gs = [s for s, _ in pts]
            vals = [err(s, w) for s, w in pts]
            cands = [(gs[0], vals[0])]
            for j in range(1, len(gs) - 1):
                if (vals[j] - vals[j - 1]) * (vals[j + 1] - vals[j]) <= 0:
                    lo, hi, s = gs[j - 1], gs[j + 1], gs[j]
                    for _newton in range(6):
                        dd = ddfun(s)
                        if dd == 0:
                            break
                        s_new = s - fx.div(dfun(s), dd)
                        if not (lo < s_new < hi):
                            break
                        done = abs(s_new - s) < (1 << (F // 2))
                        s = s_new
                        if done:
                            break
                    e_s = err(s)
                    cands.append((s, e_s) if abs(e_s) >= abs(vals[j]) else (gs[j], vals[j]))
            cands.append((gs[-1], vals[-1]))
            chosen = _select_alternating(cands, n)
            if len(chosen) < n:  # not enough alternation: keep the current solution
                break
            emax = max(abs(e) for _, e in cands)
            emin = min(abs(e) for _, e in chosen)
            ref = [s for s, _ in chosen]
            # exact comparison: on a huge interval the fixed-point errors exceed the float range
            if emax == 0 or (emax - emin) * tol_q.denominator < tol_q.numerator * emax:
                break
    reference = tuple(min(max(R * Fraction(s, 1 << F), -R), R) for s in ref)
    return cheb, reference, F
