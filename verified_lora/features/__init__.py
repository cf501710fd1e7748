"""Symmetric-monomial features: the column layout (:mod:`.layout`, a leaf) and the maps (:mod:`.maps`).

``P(beta <u, v>) = <phi_U(u), phi_V(v)>`` for a polynomial ``P`` of degree ``g``; see the two
submodules. Everything is re-exported here, so ``from verified_lora import features as F`` gives
``F.rank``, ``F.feature_layout``, ``F.phi_u``, ...
"""

from __future__ import annotations

from .layout import (FeatureLayout, degree_for, derivative_table, derivative_tables, exponents, feature_layout,
                     monomial_tables, multinomials, paper_rank_bound, rank)
from .maps import (antiderivative_coefficients, contract_derivative, derivative_coefficients, lowrank_vjp_t, monomials, monomials_t,
                   monomials_vjp, phi_u, phi_u_vjp, phi_v, phi_v_vjp, query_weights)

__all__ = ["FeatureLayout", "feature_layout", "rank", "paper_rank_bound", "exponents", "multinomials",
           "derivative_table", "derivative_tables", "monomial_tables", "degree_for", "monomials", "monomials_t",
           "monomials_vjp", "derivative_coefficients", "lowrank_vjp_t", "contract_derivative", "query_weights",
           "antiderivative_coefficients", "phi_u", "phi_v", "phi_u_vjp", "phi_v_vjp"]
