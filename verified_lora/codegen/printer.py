"""CUDA C printer: SymPy's C99 printer with CUDA types, expanded small powers and canonical CSE.

Only what differs from C99 is changed (docs/design.md section 6):

* the floating type is chosen through ``type_aliases`` (``real -> float32 | float64``), so
  literals get the ``F`` suffix and math functions the ``f`` suffix (``expf``) in float32;
* integer powers ``x**n`` with ``|n| <= 4`` are expanded into products
  (``create_expand_pow_optimization``), so no ``pow`` call appears for them;
* a whole kernel body goes through ``cse(..., order="canonical")`` so the printed text depends
  only on the expressions, never on hash seeds or insertion order;
* anything a kernel cannot express (non-real numbers, symbolic functions, relational values,
  non-integer powers other than square roots, unknown symbols) raises
  :class:`~verified_lora.errors.CodegenError` naming the offending sub-expression.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sympy as sp
from sympy.codegen.ast import float32, float64, real
from sympy.codegen.rewriting import create_expand_pow_optimization, optimize
from sympy.core.relational import Relational
from sympy.logic.boolalg import Boolean
from sympy.printing.c import C99CodePrinter

from ..errors import CodegenError

__all__ = ["CudaPrinter", "CTYPES", "SUPPORTED_FUNCTIONS", "PrintedBlock", "print_block", "check_supported",
           "count_ops"]

CTYPES = {"float32": "float", "float64": "double"}
"""C type of each supported floating dtype."""

SUPPORTED_FUNCTIONS = (sp.exp, sp.log, sp.Max, sp.Min, sp.Abs)
"""The function heads a kernel expression may contain (besides +, *, / and powers)."""

MAX_EXPANDED_POWER = 4
_EXPAND_POW = create_expand_pow_optimization(MAX_EXPANDED_POWER)


class CudaPrinter(C99CodePrinter):
    """C99 printer for CUDA device code in one floating dtype (``"float32"`` or ``"float64"``)."""

    printmethod = "_cudacode"
    language = "CUDA"

    def __init__(self, dtype: str = "float64", settings: Mapping | None = None):
        if dtype not in CTYPES:
            raise CodegenError(f"dtype: expected one of {sorted(CTYPES)}, got {dtype!r}")
        merged = {"type_aliases": {real: float32 if dtype == "float32" else float64}}
        merged.update(settings or {})
        super().__init__(merged)
        self.dtype = dtype

    def _print_Max(self, expr):  # fmax/fmaxf for any arity, nested left to right
        return self._nested("fmax", expr.args)

    def _print_Min(self, expr):
        return self._nested("fmin", expr.args)

    def _nested(self, name: str, args) -> str:
        suffix = "f" if self.dtype == "float32" else ""
        out = self._print(args[0])
        for a in args[1:]:
            out = f"{name}{suffix}({out}, {self._print(a)})"
        return out


def check_supported(expr: sp.Expr, allowed: set[sp.Symbol], where: str) -> None:
    """Raise :class:`CodegenError` unless ``expr`` is a real expression a kernel can evaluate."""
    if not isinstance(expr, sp.Expr):
        raise CodegenError(f"{where}: expected a SymPy scalar expression, got {type(expr).__name__} {expr!r}")
    for node in sp.preorder_traversal(expr):
        if isinstance(node, (sp.MatrixBase, sp.MatrixExpr)):
            raise CodegenError(f"{where}: matrix sub-expression {node} cannot be printed elementwise; "
                               f"give the entry formula instead")
        if isinstance(node, sp.Symbol):
            if node not in allowed:
                raise CodegenError(f"{where}: symbol {node} is not a kernel argument "
                                   f"(arguments: {', '.join(sorted(map(str, allowed)))})")
        elif node.is_Number:
            if not node.is_real or not node.is_finite:
                raise CodegenError(f"{where}: constant {node} is not a finite real number")
            if isinstance(node, sp.Float):
                raise CodegenError(f"{where}: floating constant {node} found; use an exact sp.Rational "
                                   f"(a Float becomes a fixed binary constant)")
        elif node in (sp.I, sp.zoo, sp.oo, -sp.oo, sp.nan):
            raise CodegenError(f"{where}: {node} cannot appear in a real kernel")
        elif isinstance(node, sp.Pow):
            e = node.exp
            if not (e.is_Integer or e == sp.Rational(1, 2) or e == -sp.Rational(1, 2)):
                raise CodegenError(f"{where}: power {node} has exponent {e}; only integers and +-1/2 are printed")
        elif isinstance(node, (Relational, Boolean, sp.Piecewise)):
            raise CodegenError(f"{where}: {type(node).__name__} {node} is not supported in kernels")
        elif isinstance(node, sp.Function) and not isinstance(node, SUPPORTED_FUNCTIONS):
            raise CodegenError(f"{where}: function {node.func} is not supported "
                               f"(supported: exp, log, Max, Min, Abs)")
        elif isinstance(node, (sp.Derivative, sp.Integral, sp.Sum, sp.Product)):
            raise CodegenError(f"{where}: unevaluated {type(node).__name__} {node}; evaluate it first")


def count_ops(exprs: Sequence[sp.Expr]) -> int:
    """Arithmetic operations and function calls in ``exprs`` (SymPy's ``count_ops``, summed)."""
    return int(sum(sp.count_ops(e, visual=False) for e in exprs))


@dataclass(frozen=True)
class PrintedBlock:
    """C statements for a group of assignments after canonical CSE.

    ``lines`` declare the common subexpressions (``const T xN = ...;``) and then perform the
    assignments; ``ops`` counts the operations of the CSE'd expressions actually printed.
    """

    lines: tuple[str, ...]
    ops: int
    program: tuple[tuple[str, sp.Expr], ...] = ()


def print_block(assignments: Sequence[tuple[str, sp.Expr]], dtype: str, *, allowed: set[sp.Symbol],
                where: str, declare: bool = False, tmp_prefix: str = "t") -> PrintedBlock:
    """Print ``target = expr`` assignments in ``dtype`` after canonical CSE and power expansion.

    ``declare=True`` declares each target as a ``const`` local of the floating type.
    ``program`` lists ``(name, expr)`` in evaluation order (before power expansion, which only
    rewrites ``x**n`` as the product the error model already assumes).
    Temporaries are named ``<tmp_prefix>0, <tmp_prefix>1, ...``.
    """
    exprs = [sp.sympify(e) for _, e in assignments]
    for (target, e) in zip((t for t, _ in assignments), exprs):
        check_supported(e, allowed, f"{where}: {target}")
    ctype = CTYPES[dtype]
    symbols = sp.numbered_symbols(tmp_prefix)
    replacements, reduced = sp.cse(exprs, symbols=symbols, order="canonical")
    printer = CudaPrinter(dtype)
    lines: list[str] = []
    printed: list[sp.Expr] = []
    program: list[tuple[str, sp.Expr]] = []
    for sym, sub in replacements:
        program.append((str(sym), sub))
        sub = optimize(sub, [_EXPAND_POW])
        printed.append(sub)
        lines.append(f"const {ctype} {sym} = {printer.doprint(sub)};")
    for (target, _), e in zip(assignments, reduced):
        program.append((target, e))
        e = optimize(e, [_EXPAND_POW])
        printed.append(e)
        code = printer.doprint(e)
        lines.append(f"const {ctype} {target} = {code};" if declare else f"{target} = {code};")
    return PrintedBlock(tuple(lines), count_ops(printed), tuple(program))
