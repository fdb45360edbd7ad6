"""Ranking by validation H and the U-vs-S Pareto front."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["rank_rows", "pareto_flags"]


def _num(value: Any) -> float | None:
    """A finite-or-infinite float, or None for missing and NaN (both mean "no score")."""
    if value is None:
        return None
    x = float(value)
    return None if math.isnan(x) else x


def _rank_key(row: Mapping[str, Any]) -> tuple[bool, float, float, float, str]:
    h, u = _num(row.get("H")), _num(row.get("U"))
    order = row.get("completed_order")
    return (
        row.get("status") == "ERROR",  # False sorts first: errors never outrank a real trial
        -h if h is not None else math.inf,
        -u if u is not None else math.inf,
        float(order) if order is not None else math.inf,
        str(row.get("trial_id", "")),
    )


def pareto_flags(rows: Sequence[Mapping[str, Any]]) -> list[bool]:
    """For each row (input order), whether it is on the U-vs-S Pareto front.

    A row is on the front when no other row has ``U >=`` and ``S >=`` with at least one strictly
    greater. Exact duplicates do not dominate each other, so both are on the front. ``ERROR``
    rows and rows with a missing or NaN U or S are never on the front and dominate nothing.
    Runs in O(n log n).
    """
    points = [
        (i, u, s)
        for i, row in enumerate(rows)
        if row.get("status") != "ERROR"
        and (u := _num(row.get("U"))) is not None
        and (s := _num(row.get("S"))) is not None
    ]
    flags = [False] * len(rows)
    points.sort(key=lambda p: -p[1])
    best_s_at_higher_u = -math.inf  # max S over every point with strictly greater U
    j = 0
    while j < len(points):
        k = j
        while k < len(points) and points[k][1] == points[j][1]:
            k += 1
        group = points[j:k]  # all points with this U
        top = max(s for _, _, s in group)
        for i, _, s in group:
            flags[i] = s == top and s > best_s_at_higher_u
        best_s_at_higher_u = max(best_s_at_higher_u, top)
        j = k
    return flags


def rank_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies of ``rows`` in leaderboard order, each with ``rank`` (1-based) and ``pareto`` set.

    Order: non-``ERROR`` rows first; then validation H descending (missing/NaN last); ties by
    higher U, then smaller ``completed_order`` (earlier trial; missing last), then ``trial_id``.
    Ranks are positions, so they are unique even for exact ties.
    """
    flags = pareto_flags(rows)
    order = sorted(range(len(rows)), key=lambda i: _rank_key(rows[i]))
    return [{**rows[i], "rank": r, "pareto": flags[i]} for r, i in enumerate(order, start=1)]
