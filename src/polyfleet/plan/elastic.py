"""Elastic rows: one slack column per row of a family, for saying why a plan is infeasible.

``build_milp(..., elastic=FAMILY)`` adds them; ``diagnose`` reads which rows needed slack.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def add_slack(
    A: sp.csr_matrix,
    row_lower: np.ndarray,
    row_upper: np.ndarray,
    slack_rows: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    integer: np.ndarray,
    cost: np.ndarray,
):
    """Append one slack column per row in ``slack_rows``; objective = sum of scaled slacks.

    A >= row gets +scale x e, a <= row gets -scale x e, with scale = |rhs| (or 1), so one
    unit of slack is the whole right-hand side and e reads as the fraction that is missing.
    """
    n = len(slack_rows)
    is_ge = np.isfinite(row_lower[slack_rows])
    rhs = np.where(is_ge, row_lower[slack_rows], row_upper[slack_rows])
    scale = np.where(np.abs(rhs) > 0, np.abs(rhs), 1.0)
    sign = np.where(is_ge, 1.0, -1.0)
    E = sp.csr_matrix((sign * scale, (slack_rows, np.arange(n))), shape=(A.shape[0], n))
    A = sp.hstack([A, E], format="csr")
    objective = np.concatenate([np.zeros(len(cost)), np.ones(n)])
    return (
        A,
        objective,
        np.concatenate([lower, np.zeros(n)]),
        np.concatenate([upper, np.full(n, np.inf)]),
        np.concatenate([integer, np.zeros(n, bool)]),
        np.concatenate([cost, np.zeros(n)]),
    )
