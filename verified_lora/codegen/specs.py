"""One frozen :class:`KernelSpec` per generated kernel: the math, its arguments and its template.

A spec holds no C text. It names a form of :mod:`verified_lora.symbolic.elementwise` (whose
entry/row expressions are proved equal to the ``derive.py`` matrices), the template that owns
the signature and loop structure, and the role of every argument:

* ``entry``: a row-major ``(n_rows x n_cols)`` array read at the current entry;
* ``row`` / ``col``: a vector read at the current row / column;
* ``scalar``: a floating kernel argument passed by value;
* ``int_table`` / ``real_table``: a small read-only table indexed by the template (feature maps);
* ``out_entry`` / ``out_row``: an output written at the current entry / row.

GEMMs are not kernels: they stay in cuBLAS through ``cupy.matmul``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from ..errors import CodegenError

__all__ = ["Arg", "KernelSpec", "TEMPLATES", "all_specs", "get_spec"]

ROLES = ("entry", "row", "col", "scalar", "int_table", "real_table", "out_entry", "out_row")
TEMPLATES = {
    "elementwise": ("n_rows", "n_cols"),
    "rows": ("n_rows", "n_cols"),
    "kron_t": ("k1", "k2", "n"),
    "monomials_t": ("d", "k", "n"),
    "monomials_backward": ("n_rows", "d", "k", "kp"),
    "row_contract": ("n_rows", "n_out", "n_inner"),
}
"""Template name -> its integer size parameters (``long long``, in signature order)."""


@dataclass(frozen=True)
class Arg:
    """One kernel argument: its name (also the SymPy symbol it binds), role and meaning."""

    name: str
    role: str
    doc: str = ""

    def __post_init__(self):
        if self.role not in ROLES:
            raise CodegenError(f"Arg {self.name!r}: role must be one of {ROLES}, got {self.role!r}")
        if not self.name.isidentifier():
            raise CodegenError(f"Arg {self.name!r}: not a C identifier")

    @property
    def is_output(self) -> bool:
        return self.role.startswith("out_")


@dataclass(frozen=True)
class KernelSpec:
    """The complete description of one kernel (printed once per dtype: float32 and float64).

    Attributes
    ----------
    name:        kernel name; the C functions are ``vl_<name>_f32`` and ``vl_<name>_f64``.
    template:    one of :data:`TEMPLATES`.
    form:        name of the form in :func:`verified_lora.symbolic.elementwise.forms` it prints
                 (several forms may be joined with ``+``).
    inputs, outputs: the arguments, in signature order (inputs first, then outputs, then sizes).
    doc:         the formula in words, with the paper reference.
    used_by:     which algorithm step calls it ("exact", "fast", ...).
    """

    name: str
    template: str
    form: str
    inputs: tuple[Arg, ...]
    outputs: tuple[Arg, ...]
    doc: str
    used_by: str

    def __post_init__(self):
        if self.template not in TEMPLATES:
            raise CodegenError(f"kernel {self.name!r}: unknown template {self.template!r} "
                               f"(known: {sorted(TEMPLATES)})")
        if not self.outputs or not all(a.is_output for a in self.outputs):
            raise CodegenError(f"kernel {self.name!r}: outputs must be non-empty out_entry/out_row args")
        if any(a.is_output for a in self.inputs):
            raise CodegenError(f"kernel {self.name!r}: an output role appears among the inputs")
        names = [a.name for a in self.args] + list(self.sizes)
        if len(set(names)) != len(names):
            raise CodegenError(f"kernel {self.name!r}: duplicate argument names {names}")

    @property
    def args(self) -> tuple[Arg, ...]:
        return self.inputs + self.outputs

    @property
    def sizes(self) -> tuple[str, ...]:
        return TEMPLATES[self.template]

    def forms(self):
        """The symbolic forms this kernel prints (from ``symbolic.elementwise``)."""
        from ..symbolic.elementwise import forms

        table = forms()
        try:
            return tuple(table[n] for n in self.form.split("+"))
        except KeyError as exc:
            raise CodegenError(f"kernel {self.name!r}: form {exc.args[0]!r} is not in symbolic.elementwise.forms()") from None

    def expressions(self) -> tuple[tuple[str, str, sp.Expr], ...]:
        """``(kind, target, expr)`` for every expression printed, in template order."""
        out: list[tuple[str, str, sp.Expr]] = []
        for form in self.forms():
            for name, op, e in getattr(form, "reductions", ()):
                out.append((f"reduce_{op}", name, e))
            for name, e in getattr(form, "outputs", ()):
                out.append(("entry", name, e))
            for name, e in getattr(form, "entry_outputs", ()):
                out.append(("entry", name, e))
            for name, e in getattr(form, "row_outputs", ()):
                out.append(("row", name, e))
        return tuple(out)

    def expression_hash(self) -> str:
        """sha256 of the SymPy expressions (``srepr``) together with the template and arguments."""
        text = "\n".join([f"template={self.template}", f"form={self.form}",
                          "args=" + ",".join(f"{a.name}:{a.role}" for a in self.args)]
                         + [f"{k} {t} := {sp.srepr(e)}" for k, t, e in self.expressions()])
        return hashlib.sha256(text.encode()).hexdigest()


def _a(name: str, role: str, doc: str = "") -> Arg:
    return Arg(name, role, doc)


@lru_cache(maxsize=None)
def all_specs() -> tuple[KernelSpec, ...]:
    """Every kernel, in a fixed order (the order of the files under ``kernels/cuda/`` and of the manifest)."""
    return (
        KernelSpec("softmax_rows", "rows", "softmax_rows",
                   (_a("s", "entry", "unscaled scores P K^T (n_rows x n_cols)"), _a("beta", "scalar", "inverse temperature")),
                   (_a("f", "out_entry", "f = softmax_rows(beta s)"),),
                   "Row softmax of beta*s with the row max subtracted (Def. 3.2-3.4): f_ij = exp(beta s_ij - m_i) / "
                   "alpha_i, alpha_i = sum_l exp(beta s_il - m_i), m_i = max_l beta s_il.", "exact"),
        KernelSpec("residual", "elementwise", "residual",
                   (_a("fv", "entry", "the GEMM f V"), _a("y", "entry", "target Y")),
                   (_a("c", "out_entry", "c = f V - Y"),),
                   "Residual c = f V - Y entrywise (Def. 3.5).", "exact, fast(paper)"),
        KernelSpec("softmax_grad_rows", "rows", "softmax_grad_rows",
                   (_a("f", "entry", "softmax rows f"), _a("q", "entry", "q = c V^T")),
                   (_a("p", "out_entry", "p = dL/dS"), _a("rvec", "out_row", "rvec = (f*q) 1")),
                   "Softmax-gradient rows (Def. 3.6 corrected): rvec_i = sum_l f_il q_il, p_ij = f_ij (q_ij - rvec_i), "
                   "i.e. p = f*q - diag(rvec) f = dL/dS.", "exact"),
        KernelSpec("row_dot", "rows", "row_dot",
                   (_a("a", "entry", "f~ V"), _a("b", "entry", "c~")),
                   (_a("rvec", "out_row", "rvec_i = sum_l a_il b_il"),),
                   "Row-wise dot products rvec_i = sum_l a_il b_il; with a = f~ V, b = c~ this is rvec~ = (f~*q~) 1 "
                   "(Lemma 3.7).", "fast(paper)"),
        KernelSpec("normalised_residual_rows", "rows", "normalised_residual_rows",
                   (_a("t", "entry", "A~ V = Phi_U (Phi_V^T V)"), _a("d", "row", "D~ = A~ 1"), _a("y", "entry", "target Y")),
                   (_a("c", "out_entry", "c~ = t/D~ - Y"), _a("yp", "out_entry", "c~ / D~"),
                    _a("rvec", "out_row", "rvec~ = sum_a c~_a t_a / D~"), _a("rneg", "out_row", "-rvec~ / D~")),
                   "Factored forward rows (Lemmas 3.3-3.4, 3.7): f~V = t/D~, c~ = f~V - Y, rvec~_i = <c~_i, (f~V)_i>, "
                   "and [c~, -rvec~]/D~, whose product with [V, 1]^T is dL~/dA~ = (q~ - rvec~)/D~.", "fast(factored)"),
        KernelSpec("scaled_divide", "elementwise", "scaled_divide",
                   (_a("a", "entry", "monomials M^T (k x n)"), _a("w", "row", "query weights w (k)"),
                    _a("d", "col", "normalisers D~ (n)")),
                   (_a("o", "out_entry", "U1^T = diag(w) M^T diag(D~)^-1"),),
                   "Normalised query factor U1^T[m, i] = w_m M[m, i] / D~_i (Lemma 3.3: U1 = D~^{-1} Phi_U).",
                   "fast(paper)"),
        KernelSpec("kron_rows_t", "kron_t", "kron_rows_t",
                   (_a("a", "entry", "U1^T (k1 x n)"), _a("b", "entry", "U2^T (k2 x n)")),
                   (_a("o", "out_entry", "(U1 (x) U2)^T (k1 k2 x n)"),),
                   "Row-wise Kronecker (face-splitting) product, transposed layout: o[l1 k2 + l2, i] = a[l1, i] b[l2, i] "
                   "(Lemma 3.6).", "fast(paper)"),
        KernelSpec("paper_grad_rows", "elementwise", "paper_grad_rows",
                   (_a("a", "entry", "p1~ K = U3 (V3^T K)"), _a("b", "entry", "f~ K = U1 (V1^T K)"),
                    _a("r", "row", "rvec~"), _a("beta", "scalar", "inverse temperature")),
                   (_a("o", "out_entry", "dL/dP = beta p~ K"),),
                   "o_ij = beta (a_ij - r_i b_ij): dL/dP = beta (p1~ - diag(rvec~) f~) K (Lemma 3.2, Theorem 3.1).",
                   "fast(paper)"),
        KernelSpec("monomials_t", "monomials_t", "monomial_step",
                   (_a("x", "entry", "inputs, transposed (d x n)"),
                    _a("parent", "int_table", "row of x^(m - e_var(m)) (k entries, parent[m] < m)"),
                    _a("var", "int_table", "the variable multiplied in (k entries, 0 <= var[m] < d)")),
                   (_a("mono", "out_entry", "x^m, transposed (k x n)"),),
                   "Symmetric monomials of degree <= g (DESIGN 4.3), transposed: mono[0, i] = 1, mono[m, i] = "
                   "mono[parent[m], i] x[var[m], i] in the features.layout column order; phi_V = mono, phi_U = w * mono.",
                   "fast"),
        KernelSpec("monomials_backward", "monomials_backward", "monomial_backward_term",
                   (_a("g", "entry", "dL/d(monomials) (n x k)"), _a("mono", "entry", "monomials (n x k)"),
                    _a("succ", "int_table", "column of m' + e_j, (kp x d)"), _a("mult", "real_table", "m'_j + 1, (kp x d)")),
                   (_a("dx", "out_entry", "dL/dx (n x d)"),),
                   "Backward of the monomial map: dx_j = sum_m' g[succ[m', j]] mult[m', j] x^m' "
                   "(= sum_m g_m d(x^m)/dx_j; features.layout.derivative_table).", "fast(phi VJPs)"),
        KernelSpec("contract_rows", "row_contract", "contract_term",
                   (_a("z", "entry", "Z = M'^T Dc (n x n_out n_inner)"), _a("y", "entry", "Y (n x n_inner)")),
                   (_a("out", "out_entry", "dL/dx (n x n_out)"),),
                   "Feature backward contraction out[i, j] = sum_a z[i, j n_inner + a] y[i, a] "
                   "(features.maps.lowrank_vjp_t after its GEMM).", "fast(factored)"),
    )


def get_spec(name: str) -> KernelSpec:
    """The spec called ``name``; :class:`CodegenError` lists the known names otherwise."""
    for spec in all_specs():
        if spec.name == name:
            return spec
    raise CodegenError(f"unknown kernel {name!r}; known kernels: {', '.join(s.name for s in all_specs())}")
