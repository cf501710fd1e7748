"""Templates: they own every kernel's signature and loop; the printer fills in the arithmetic.

Each template emits ``extern "C" __global__ void vl_<name>_<f32|f64>(...)`` with inputs as
``const T* __restrict__``, outputs as ``T* __restrict__``, floating scalars by value and the
integer sizes last as ``const long long`` (``L * L_k`` reaches 4.3e9 at L = 65,536, beyond
int32). Every kernel is a grid-stride loop with a bound check and no ``__syncthreads``, so a CPU
launcher that runs each (block, thread) pair in turn executes it faithfully. Array values are
loaded into locals named ``v_<arg>``; common subexpressions are ``cseN``.
"""

from __future__ import annotations

import sympy as sp

from ..errors import CodegenError
from .printer import CTYPES, print_block
from .specs import KernelSpec

__all__ = ["render_kernel", "stage_program", "SUFFIX", "GRID_STRIDE"]

SUFFIX = {"float32": "f32", "float64": "f64"}
GRID_STRIDE = ("for (long long {i} = (long long)blockIdx.x * blockDim.x + threadIdx.x; {i} < {n}; "
               "{i} += (long long)blockDim.x * gridDim.x)")


def _local(name: str) -> str:
    return f"v_{name}"


def _symbols_to_locals(spec: KernelSpec, expr: sp.Expr, reduced: dict[str, str]) -> sp.Expr:
    """Rename argument symbols to their C locals (``v_x``) or by-value names, reductions to ``acc_*``."""
    mapping = {}
    roles = {a.name: a.role for a in spec.args}
    for sym in expr.free_symbols:
        n = sym.name
        if n in reduced:
            mapping[sym] = sp.Symbol(reduced[n], real=True)
        elif roles.get(n) == "scalar":
            mapping[sym] = sym
        elif n in roles or n in _template_locals(spec):
            mapping[sym] = sp.Symbol(_local(n), real=True)
        else:
            raise CodegenError(f"kernel {spec.name!r}: expression uses {n!r}, which is neither an argument "
                               f"({', '.join(roles)}) nor a reduction ({', '.join(reduced) or 'none'})")
    return expr.xreplace(mapping)


def _template_locals(spec: KernelSpec) -> tuple[str, ...]:
    """Extra value names a template binds besides the arguments."""
    return {"monomials_t": ("prev",), "monomials_backward": (), "row_contract": ("z",)}.get(spec.template, ())


def _block(spec, dtype, assigns, reduced, indent, declare=True):
    allowed_names = {a.name for a in spec.args} | set(reduced) | set(_template_locals(spec))
    renamed = [(t, _symbols_to_locals(spec, e, reduced)) for t, e in assigns]
    allowed = set().union(*(e.free_symbols for _, e in renamed)) if renamed else set()
    del allowed_names
    block = print_block(renamed, dtype, allowed=allowed, where=f"kernel {spec.name}", declare=declare,
                        tmp_prefix="cse")
    return [indent + line for line in block.lines], block.ops


def stage_program(spec: KernelSpec, dtype: str, assigns, reduced: dict[str, str]):
    """The CSE'd ``(name, expr)`` program the template prints for one stage (for the error model)."""
    renamed = [(t, _symbols_to_locals(spec, e, reduced)) for t, e in assigns]
    allowed = set().union(*(e.free_symbols for _, e in renamed)) if renamed else set()
    return print_block(renamed, dtype, allowed=allowed, where=f"kernel {spec.name}", tmp_prefix="cse").program


def _signature(spec: KernelSpec, dtype: str) -> str:
    T = CTYPES[dtype]
    parts = []
    for a in spec.args:
        if a.role == "scalar":
            parts.append(f"const {T} {a.name}")
        elif a.role == "int_table":
            parts.append(f"const int* __restrict__ {a.name}")
        elif a.is_output:
            parts.append(f"{T}* __restrict__ {a.name}")
        else:
            parts.append(f"const {T}* __restrict__ {a.name}")
    parts += [f"const long long {s}" for s in spec.sizes]
    body = ",\n    ".join(parts)
    return f'extern "C" __global__ void vl_{spec.name}_{SUFFIX[dtype]}(\n    {body})'


def _loads(spec, names, index: dict[str, str], indent: str, dtype: str) -> list[str]:
    T = CTYPES[dtype]
    roles = {a.name: a.role for a in spec.args}
    out = []
    for n in sorted(names):
        role = roles.get(n)
        if role in ("entry", "row", "col", "real_table"):
            out.append(f"{indent}const {T} {_local(n)} = {n}[{index[role]}];")
    return out


def _used(exprs) -> set[str]:
    return {s.name for e in exprs for s in e.free_symbols}


def _render_elementwise(spec, dtype):
    (form,) = spec.forms()
    outs = list(form.outputs)
    _check_targets(spec, [t for t, _ in outs])
    lines, ops = _block(spec, dtype, [(f"{t}[i]", e) for t, e in outs], {}, " " * 8, declare=False)
    used = _used(e for _, e in outs)
    roles = {a.name: a.role for a in spec.args}
    need_row = any(roles.get(n) == "row" for n in used)
    need_col = any(roles.get(n) == "col" for n in used)
    body = ["    const long long n = n_rows * n_cols;", "    " + GRID_STRIDE.format(i="i", n="n") + " {"]
    if need_row or need_col:
        body.append("        const long long row = i / n_cols;")
    if need_col:
        body.append("        const long long col = i - row * n_cols;")
    body += _loads(spec, used, {"entry": "i", "row": "row", "col": "col"}, " " * 8, dtype)
    body += lines + ["    }"]
    return body, ops


def _render_rows(spec, dtype):
    (form,) = spec.forms()
    _check_targets(spec, [t for t, _ in form.entry_outputs] + [t for t, _ in form.row_outputs])
    T = CTYPES[dtype]
    body = ["    " + GRID_STRIDE.format(i="row", n="n_rows") + " {", "        const long long base = row * n_cols;"]
    reduced: dict[str, str] = {}
    ops = 0
    idx = {"entry": "base + j", "row": "row", "col": "j"}
    for name, op, expr in form.reductions:
        acc = f"acc_{name}"
        if op == "sum":
            body.append(f"        {T} {acc} = 0;")
        elif op == "max":
            body.append(f"        {T} {acc} = 0;  /* set from column 0 below (n_cols >= 1) */")
        else:
            raise CodegenError(f"kernel {spec.name!r}: reduction {name!r} has unsupported op {op!r} (sum, max)")
        body.append("        for (long long j = 0; j < n_cols; ++j) {")
        body += _loads(spec, _used([expr]) - set(reduced), idx, " " * 12, dtype)
        lines, n = _block(spec, dtype, [("term", expr)], reduced, " " * 12)
        body += lines
        ops += n + 1
        if op == "sum":
            body.append(f"            {acc} += term;")
        else:
            fmax = "fmaxf" if dtype == "float32" else "fmax"
            body.append(f"            {acc} = (j == 0) ? term : {fmax}({acc}, term);")
        body.append("        }")
        reduced[name] = acc
    if form.entry_outputs:
        body.append("        for (long long j = 0; j < n_cols; ++j) {")
        body += _loads(spec, _used(e for _, e in form.entry_outputs) - set(reduced), idx, " " * 12, dtype)
        lines, n = _block(spec, dtype, [(f"{t}[base + j]", e) for t, e in form.entry_outputs], reduced, " " * 12,
                          declare=False)
        body += lines + ["        }"]
        ops += n
    if form.row_outputs:
        body += _loads(spec, _used(e for _, e in form.row_outputs) - set(reduced), idx, " " * 8, dtype)
        lines, n = _block(spec, dtype, [(f"{t}[row]", e) for t, e in form.row_outputs], reduced, " " * 8,
                          declare=False)
        body += lines
        ops += n
    body.append("    }")
    return body, ops


def _render_kron_t(spec, dtype):
    (form,) = spec.forms()
    _check_targets(spec, [t for t, _ in form.outputs])
    T = CTYPES[dtype]
    lines, ops = _block(spec, dtype, [(f"{t}[i]", e) for t, e in form.outputs], {}, " " * 8, declare=False)
    body = ["    const long long total = k1 * k2 * n;",
            "    " + GRID_STRIDE.format(i="i", n="total") + " {",
            "        const long long pair = i / n;",
            "        const long long col = i - pair * n;",
            "        const long long l1 = pair / k2;",
            "        const long long l2 = pair - l1 * k2;",
            f"        const {T} v_a = a[l1 * n + col];",
            f"        const {T} v_b = b[l2 * n + col];"]
    return body + lines + ["    }"], ops


def _render_monomials_t(spec, dtype):
    (step,) = spec.forms()
    T = CTYPES[dtype]
    _check_targets(spec, [t for t, _ in step.outputs])
    lines, ops = _block(spec, dtype, [(f"mono[m * n + col]", step.outputs[0][1])], {}, " " * 12, declare=False)
    body = ["    " + GRID_STRIDE.format(i="col", n="n") + " {",
            "        mono[col] = 1;",
            "        for (long long m = 1; m < k; ++m) {",
            f"            const {T} v_prev = mono[(long long)parent[m] * n + col];",
            f"            const {T} v_x = x[(long long)var[m] * n + col];"]
    return body + lines + ["        }", "    }"], ops


def _render_monomials_backward(spec, dtype):
    (form,) = spec.forms()
    T = CTYPES[dtype]
    lines, ops = _block(spec, dtype, [("term", form.outputs[0][1])], {}, " " * 12)
    body = ["    const long long total = n_rows * d;", "    " + GRID_STRIDE.format(i="i", n="total") + " {",
            "        const long long row = i / d;",
            "        const long long j = i - row * d;",
            f"        {T} acc = 0;",
            "        for (long long m = 0; m < kp; ++m) {",
            f"            const {T} v_g = g[row * k + succ[m * d + j]];",
            f"            const {T} v_mult = mult[m * d + j];",
            f"            const {T} v_mono = mono[row * k + m];"]
    body += lines + ["            acc += term;", "        }", "        dx[i] = acc;", "    }"]
    return body, ops + 1


def _render_row_contract(spec, dtype):
    (form,) = spec.forms()
    T = CTYPES[dtype]
    lines, ops = _block(spec, dtype, [("term", form.outputs[0][1])], {}, " " * 12)
    body = ["    const long long total = n_rows * n_out;", "    " + GRID_STRIDE.format(i="i", n="total") + " {",
            "        const long long row = i / n_out;",
            "        const long long j = i - row * n_out;",
            "        const long long zb = (row * n_out + j) * n_inner;",
            f"        {T} acc = 0;",
            "        for (long long a = 0; a < n_inner; ++a) {",
            f"            const {T} v_z = z[zb + a];",
            f"            const {T} v_y = y[row * n_inner + a];"]
    body += lines + ["            acc += term;", "        }", "        out[i] = acc;", "    }"]
    return body, ops + 1


def _check_targets(spec: KernelSpec, targets: list[str]) -> None:
    outs = {a.name for a in spec.outputs}
    missing = outs - set(targets)
    extra = set(targets) - outs
    if missing or extra:
        raise CodegenError(f"kernel {spec.name!r}: form {spec.form!r} writes {sorted(targets)} but the spec's "
                           f"outputs are {sorted(outs)}")


_RENDERERS = {"elementwise": _render_elementwise, "rows": _render_rows, "kron_t": _render_kron_t,
              "monomials_t": _render_monomials_t, "monomials_backward": _render_monomials_backward,
              "row_contract": _render_row_contract}


def render_kernel(spec: KernelSpec, dtype: str) -> tuple[str, int]:
    """C text of ``spec`` in ``dtype`` and its op count (arithmetic ops and calls printed)."""
    if dtype not in CTYPES:
        raise CodegenError(f"dtype: expected one of {sorted(CTYPES)}, got {dtype!r}")
    body, ops = _RENDERERS[spec.template](spec, dtype)
    return _signature(spec, dtype) + "\n{\n" + "\n".join(body) + "\n}\n", ops
