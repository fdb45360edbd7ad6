"""Leaderboard rows as text: an aligned table, CSV, JSON and a GitHub markdown table."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from ..errors import LeaderboardError

__all__ = ["FORMATS", "format_rows", "format_searches", "to_csv", "to_json", "to_markdown", "to_text"]

Format = Literal["table", "csv", "json", "md"]
FORMATS: tuple[str, ...] = ("table", "csv", "json", "md")
_MD_COLUMNS = ("rank", "trial_id", "variant", "H", "U", "S", "zsl_acc", "epochs", "status")
_TEXT_COLUMNS = ("rank", "trial_id", "variant", "status", "H", "U", "S", "zsl_acc", "epochs", "pareto")
_MAX_KEY_PARAMS = 6

Row = Mapping[str, Any]


def format_rows(
    rows: Sequence[Row], *, fmt: Format = "table", top: int | None = None, variant: str | None = None,
    trials: Collection[str] | None = None,
) -> str:
    """Render leaderboard rows (as from `read_rows`, already in rank order).

    Args:
        rows: leaderboard rows.
        fmt: ``table`` (aligned text), ``csv`` (every column), ``json`` (every column, a list of
            objects) or ``md`` (GitHub markdown: rank, trial_id, variant, H, U, S, zsl_acc, epochs,
            status, key params).
        top: keep only the first ``top`` rows (after the variant filter).
        variant: keep only rows of this GAN variant.
        trials: keep only the rows of these trial ids (their key params still chosen among all
            ``rows``, as `leaderboard show` shows them).

    Raises:
        LeaderboardError: unknown ``fmt`` or a negative ``top``.
    """
    if fmt not in FORMATS:
        raise LeaderboardError(f"unknown leaderboard format {fmt!r}; use one of {', '.join(FORMATS)}")
    if top is not None and top < 0:
        raise LeaderboardError(f"top={top} is negative; pass a row count >= 0")
    selected = [r for r in rows if (variant is None or r.get("variant") == variant)
                and (trials is None or r.get("trial_id") in trials)]
    if top is not None:
        selected = selected[:top]
    if fmt == "csv":  # every column, in the stored order: the header even with no row to show
        from ._schema import leaderboard_schema

        return to_csv(selected, columns=_columns(rows) or leaderboard_schema().names)
    if fmt == "json":
        return to_json(selected)
    # The key params are chosen among all the rows, so that a trial shows the same ones
    # whichever filter picked it.
    params = dict(zip((id(r) for r in rows), _key_params(rows), strict=True))
    render = to_text if fmt == "table" else to_markdown
    return render(selected, key_params=[params[id(r)] for r in selected])


# The columns of the listing of searches (`list_searches` entries), in order.
_SEARCH_COLUMNS = ("name", "dataset", "protocol", "n_trials", "best_H", "best_variant", "updated_at")


def format_searches(entries: Sequence[Row], *, fmt: Format = "table") -> str:
    """Render the index entries of the searches under a storage root (as from `list_searches`)
    in any of the leaderboard `FORMATS`, the formats ``leaderboard show`` takes.

    Raises:
        LeaderboardError: unknown ``fmt``.
    """
    if fmt not in FORMATS:
        raise LeaderboardError(f"unknown leaderboard format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps([{k: _plain(v) for k, v in e.items()} for e in entries], indent=2, default=str,
                          allow_nan=False) + "\n"
    if fmt == "csv":
        return to_csv(entries, columns=_SEARCH_COLUMNS)
    if fmt == "md":
        lines = ["| " + " | ".join(_SEARCH_COLUMNS) + " |", "| " + " | ".join("---" for _ in _SEARCH_COLUMNS) + " |"]
        lines += ["| " + " | ".join(_short(e.get(c)).replace("|", "\\|") for c in _SEARCH_COLUMNS) + " |"
                  for e in entries]
        return "\n".join(lines) + "\n"
    lines = [f"{'search':28} {'dataset':10} {'protocol':10} {'trials':>6} {'best H':>7} best variant"]
    # A search whose every trial failed has no dataset row, no best H: "-", not "None" or 0.
    lines += [f"{e['name']:28} {e.get('dataset') or '-':10} {e.get('protocol') or '-':10} {e.get('n_trials') or 0:>6} "
              f"{'-' if e.get('best_H') is None else format(e['best_H'], '7.4f'):>7} {e.get('best_variant') or '-'}"
              for e in entries]
    return "\n".join(lines) + "\n"


def _columns(rows: Sequence[Row]) -> list[str]:
    cols: dict[str, None] = {}
    for r in rows:
        cols.update(dict.fromkeys(r))
    return list(cols)


def _plain(value: Any) -> Any:
    """A JSON value: ISO for timestamps, null for NaN and infinities (which JSON lacks)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _cell(value: Any) -> str:
    """One CSV cell: empty for null, ISO for timestamps, JSON for lists, repr-exact floats."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def to_csv(rows: Sequence[Row], *, columns: Sequence[str] | None = None) -> str:
    """Every column (``columns``, else the rows' keys in order) as CSV with a header line."""
    cols = list(columns) if columns is not None else _columns(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for r in rows:
        writer.writerow([_cell(r.get(c)) for c in cols])
    return buf.getvalue()


def to_json(rows: Sequence[Row]) -> str:
    """A JSON list of objects, one per row, every column (timestamps as ISO strings)."""
    return json.dumps([{k: _plain(v) for k, v in r.items()} for r in rows], indent=2, allow_nan=False) + "\n"


def _short(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _params(row: Row) -> dict[str, Any]:
    raw = row.get("config_json")
    return json.loads(raw) if raw else {}


def _key_params(rows: Sequence[Row]) -> list[str]:
    """Per row, ``name=value`` of the hyperparameters that differ between the rows (those are
    what tells the rows apart); with one row or no differences, its first few."""
    configs = [_params(r) for r in rows]
    # What tells the rows apart most comes first: the names with the most distinct values (the
    # continuous dimensions of the search), then the others; read from the rows alone, so any
    # variant's parameters are ordered without a list here and without loading the variants.
    distinct = {n: len({json.dumps(c.get(n)) for c in configs}) for c in configs for n in c}
    names = sorted(distinct, key=lambda n: (-distinct[n], n))
    varying = [n for n in names if distinct[n] > 1] or names
    out = []
    for c in configs:
        shown = [n for n in varying if n in c][:_MAX_KEY_PARAMS]
        out.append(", ".join(f"{n}={c[n]:.4g}" if isinstance(c[n], float) else f"{n}={c[n]}" for n in shown))
    return out


def to_markdown(rows: Sequence[Row], *, key_params: Sequence[str] | None = None) -> str:
    """A GitHub markdown table: a header line, a ``| --- |`` separator, one line per row (test H
    too once finalized, as in `to_text`); ``key_params`` per row, else chosen among ``rows``."""
    cols = [*_MD_COLUMNS, *_finalized_columns(rows)]
    header = [*cols, "key params"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    for r, params in zip(rows, _key_params(rows) if key_params is None else key_params, strict=True):
        cells = [_short(r.get(c)) for c in cols] + [params]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return _peek_warning(rows) + "\n".join(lines) + "\n"


def _finalized_columns(rows: Sequence[Row]) -> list[str]:
    """The test-split columns worth a place in a short table: once finalize has scored a row."""
    return ["test_H_mean", "test_H_std"] if any(r.get("test_H_mean") is not None for r in rows) else []


def _peek_warning(rows: Sequence[Row]) -> str:
    if not any(r.get("selected_on_test") for r in rows):
        return ""
    return "SELECTED ON TEST (select_on_test): these scores are not an honest estimate of test performance\n"


def to_text(rows: Sequence[Row], *, key_params: Sequence[str] | None = None) -> str:
    """An aligned plain-text table of the main columns (plus test H when finalized) and the
    key hyperparameters of each row (``key_params``, else chosen among ``rows``)."""
    cols = [*_TEXT_COLUMNS, *_finalized_columns(rows)]
    params = _key_params(rows) if key_params is None else key_params
    cells = [[_short(r.get(c)) for c in cols] + [p] for r, p in zip(rows, params, strict=True)]
    cols.append("key params")
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return _peek_warning(rows) + "\n".join(lines) + "\n"
