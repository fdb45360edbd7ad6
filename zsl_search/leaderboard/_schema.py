"""The leaderboard's Arrow schema and the conversions rows <-> records <-> Arrow table.

Three shapes of a trial:

* an *input row*: what the search hands in (``params`` as a dict, ``created_at`` as a datetime
  or ISO string, finalize's ``test_*`` keys optional);
* a *record*: an input row validated and completed (`normalize_row`); the spool stores these;
* a *leaderboard row*: one row of the table, with ``rank``, ``pareto``, ``config_json`` and
  one flattened ``param_<name>`` column per hyperparameter (`table_to_rows`).

`normalize_row` accepts an input row or a leaderboard row, so read-modify-write is lossless.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import LeaderboardError
from ._rank import rank_rows

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "STATUSES", "TEST_COLUMNS", "PARAM_PREFIX", "leaderboard_schema", "normalize_row",
    "record_to_json", "rows_to_table", "table_to_rows",
]

# How a trial ended. COMPLETE: trained budget.max_epochs; EARLY_STOPPED: ASHA stopped it;
# STOPPED: the search ended (time budget, or a dataset that became unreadable) while it ran;
# INTERRUPTED: the search was interrupted (Ctrl-C, SIGTERM, `search stop`) and `search resume`
# continues it; DIVERGED: a loss became NaN/inf, training stopped there; ERROR: it raised, also
# after one retry from its checkpoint (``error`` holds the first line).
STATUSES = ("COMPLETE", "EARLY_STOPPED", "STOPPED", "INTERRUPTED", "DIVERGED", "ERROR")
PARAM_PREFIX = "param_"
TEST_COLUMNS = (
    "test_U_mean", "test_U_std", "test_S_mean", "test_S_std", "test_H_mean", "test_H_std",
    "test_steps", "test_cls_steps", "test_seeds",
)
# (name, arrow type name, nullable); "params" marks where the param_<name> columns go.
_LAYOUT: tuple[tuple[str, str, bool], ...] = (
    ("rank", "int64", False), ("search", "string", False), ("trial_id", "string", False),
    ("dataset", "string", True), ("protocol", "string", True), ("variant", "string", False),
    ("H", "float64", True), ("U", "float64", True), ("S", "float64", True), ("pareto", "bool", False),
    ("zsl_acc", "float64", True), ("retrieval_map", "float64", True),
    ("epochs", "int64", True), ("best_epoch", "int64", True),
    ("best_step", "int64", True), ("schedule_steps", "int64", True), ("cls_epochs", "int64", True),
    ("cls_steps", "int64", True),
    ("selected_on_test", "bool", True), ("evaluator", "string", True), ("status", "string", False),
    ("error", "string", True), ("restarts", "int64", True),
    ("seconds", "float64", True), ("startup_s", "float64", True), ("seed", "int64", True),
    ("params", "", True),
    ("config_json", "string", False), ("version", "string", False),
    ("created_at", "timestamp", False), ("completed_order", "int64", True), ("node_id", "string", True),
    *((name, "float64", True) for name in TEST_COLUMNS[:6]),
    ("test_steps", "int64", True), ("test_cls_steps", "int64", True), ("test_seeds", "list_int64", True),
)
_FLOATS = ("H", "U", "S", "zsl_acc", "retrieval_map", "seconds", "startup_s", *TEST_COLUMNS[:6])
_INTS = ("epochs", "best_epoch", "best_step", "schedule_steps", "cls_epochs", "cls_steps", "restarts", "seed",
         "completed_order", "test_steps", "test_cls_steps")
_STRINGS = ("dataset", "protocol", "node_id", "error", "evaluator")
_DERIVED = ("rank", "pareto", "config_json")  # recomputed on every write
_ALLOWED_KEYS = frozenset({
    "trial_id", "search", "variant", "status", "params", "created_at", "version", "test_seeds", "selected_on_test",
    *_FLOATS, *_INTS, *_STRINGS, *_DERIVED,
})


def _arrow_type(name: str) -> pa.DataType:
    import pyarrow as pa

    return {
        "int64": pa.int64(), "float64": pa.float64(), "string": pa.string(), "bool": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        # Parquet names the list item "element"; using that name makes the round trip exact.
        "list_int64": pa.list_(pa.field("element", pa.int64())),
    }[name]


def leaderboard_schema(param_types: Mapping[str, pa.DataType] | None = None) -> pa.Schema:
    """The leaderboard schema with one nullable ``param_<name>`` column per entry of
    ``param_types`` (sorted by name), placed between ``seed`` and ``config_json``."""
    import pyarrow as pa

    fields = []
    for name, type_name, nullable in _LAYOUT:
        if name == "params":
            fields += [pa.field(PARAM_PREFIX + p, t, nullable=True) for p, t in sorted((param_types or {}).items())]
        else:
            fields.append(pa.field(name, _arrow_type(type_name), nullable=nullable))
    return pa.schema(fields)


# ------------------------------------------------------------------ rows -> records


def normalize_row(row: Mapping[str, Any], *, search: str | None = None) -> dict[str, Any]:
    """Validate one input row (or leaderboard row) and return its record.

    Fills ``search`` from the argument, ``version`` with this package's version and
    ``created_at`` with the current UTC time when absent; converts ``created_at`` to an aware
    UTC datetime (naive means UTC) and the numbers to plain ``int``/``float``.

    Raises:
        LeaderboardError: a required key (trial_id, variant, status; H, U, S unless ERROR) is
            missing, a key is unknown, a value has the wrong type, or ``search`` disagrees.
    """
    tid = str(row.get("trial_id") or "")
    where = f"search {search or row.get('search')!r}, trial {tid or '?'}"
    unknown = sorted(k for k in row if k not in _ALLOWED_KEYS and not k.startswith(PARAM_PREFIX))
    if unknown:
        raise LeaderboardError(f"{where}: unknown row key(s) {', '.join(unknown)}; valid: {', '.join(sorted(_ALLOWED_KEYS))}")
    if not tid:
        raise LeaderboardError(f"{where}: row has no trial_id; every row needs a unique trial_id")
    row_search = row.get("search") or search
    if search is not None and row_search != search:
        raise LeaderboardError(f"{where}: row belongs to search {row.get('search')!r}; write it with that search's writer")
    if not row_search:
        raise LeaderboardError(f"{where}: row has no search name; pass search= or set row['search']")
    status = row.get("status")
    if status not in STATUSES:
        raise LeaderboardError(f"{where}: status {status!r} is not one of {', '.join(STATUSES)}")
    if not row.get("variant"):
        raise LeaderboardError(f"{where}: row has no variant; set row['variant'] to the GAN variant name")

    rec: dict[str, Any] = {"search": str(row_search), "trial_id": tid, "variant": str(row["variant"]), "status": status}
    for key in _FLOATS:
        rec[key] = _float(row.get(key), key, where)
    if status != "ERROR" and any(rec[k] is None for k in ("H", "U", "S")):
        raise LeaderboardError(f"{where}: a {status} row needs numeric H, U and S; mark failed trials status='ERROR'")
    for key in _INTS:
        rec[key] = _int(row.get(key), key, where)
    for key in _STRINGS:
        rec[key] = None if row.get(key) is None else str(row[key])
    on_test = row.get("selected_on_test")
    if on_test is not None and not isinstance(on_test, bool):
        raise LeaderboardError(f"{where}: selected_on_test={on_test!r} is not a bool")
    rec["selected_on_test"] = on_test
    seeds = row.get("test_seeds")
    rec["test_seeds"] = None if seeds is None else [_int(s, "test_seeds", where) for s in seeds]
    rec["params"] = _params(row, where)
    rec["version"] = str(row.get("version") or __version__)
    rec["created_at"] = _timestamp(row.get("created_at"), where)
    return rec


def _float(value: Any, key: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, (bool, str)) or not hasattr(value, "__float__"):
        raise LeaderboardError(f"{where}: {key}={value!r} is not a number")
    x = float(value)
    return None if math.isnan(x) else x  # NaN means "no score"; null keeps round trips exact


def _int(value: Any, key: str, where: str) -> int | None:
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        value = value.item()  # numpy scalar
    if isinstance(value, bool) or not (isinstance(value, int) or isinstance(value, float) and value.is_integer()):
        raise LeaderboardError(f"{where}: {key}={value!r} is not an integer")
    return int(value)


def _plain(value: Any, where: str) -> Any:
    """``value`` as JSON-able Python (numpy scalars unwrapped), else `LeaderboardError`."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v, where) for k, v in value.items()}
    if hasattr(value, "item"):
        return _plain(value.item(), where)
    raise LeaderboardError(f"{where}: hyperparameter value {value!r} ({type(value).__name__}) is not JSON-serializable")


def _params(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    if "params" in row and row["params"] is not None:
        if not isinstance(row["params"], Mapping):
            raise LeaderboardError(f"{where}: params must be a dict of hyperparameters, got {type(row['params']).__name__}")
        return {str(k): _plain(v, where) for k, v in row["params"].items()}
    if row.get("config_json"):
        try:
            params = json.loads(row["config_json"])
        except ValueError as e:
            raise LeaderboardError(f"{where}: config_json is not valid JSON ({e}); rewrite the row") from e
        return dict(params)
    return {k[len(PARAM_PREFIX):]: _plain(v, where) for k, v in row.items() if k.startswith(PARAM_PREFIX) and v is not None}


def _timestamp(value: Any, where: str) -> datetime:
    if value is None:
        return datetime.now(UTC)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as e:
            raise LeaderboardError(f"{where}: created_at={value!r} is not an ISO 8601 timestamp") from e
    if not isinstance(value, datetime):
        raise LeaderboardError(f"{where}: created_at={value!r} is not a datetime or ISO 8601 string")
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    # A plain datetime even for subclasses such as pandas.Timestamp (nanoseconds dropped).
    return datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                    value.microsecond, tzinfo=UTC)


def record_to_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as JSON-able data (``created_at`` as an ISO string); `normalize_row` reverses it."""
    return {**record, "created_at": record["created_at"].isoformat()}


# ------------------------------------------------------------------ records <-> table


def _param_type(values: list[Any]) -> tuple[pa.DataType, bool]:
    """Arrow type for one hyperparameter's non-null values; True means "store as JSON text"."""
    import pyarrow as pa

    if all(isinstance(v, bool) for v in values):
        return pa.bool_(), False
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return pa.int64(), False
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return pa.float64(), False
    if all(isinstance(v, str) for v in values):
        return pa.string(), False
    return pa.string(), True  # mixed or nested: the text is exact, config_json has the original


def rows_to_table(rows: Iterable[Mapping[str, Any]], *, search: str | None = None) -> pa.Table:
    """Normalize, rank and flag ``rows`` (input or leaderboard rows) into a leaderboard table.

    ``param_<name>`` columns are the union over all rows' hyperparameters, null where a row's
    variant lacks one. Rows sharing a ``trial_id`` are an error (merge them first).

    Raises:
        LeaderboardError: a row is invalid (see `normalize_row`) or a trial_id repeats.
    """
    import pyarrow as pa

    records = [normalize_row(r, search=search) for r in rows]
    seen: set[str] = set()
    for rec in records:
        if rec["trial_id"] in seen:
            raise LeaderboardError(
                f"search {rec['search']!r}: trial_id {rec['trial_id']!r} appears twice; merge rows by trial_id first"
            )
        seen.add(rec["trial_id"])
    names = sorted({k for rec in records for k in rec["params"]})
    kinds = {n: _param_type([rec["params"][n] for rec in records if rec["params"].get(n) is not None]) for n in names}
    ranked = rank_rows(records)
    out = []
    for rec in ranked:
        flat = {k: v for k, v in rec.items() if k != "params"}
        flat["config_json"] = json.dumps(rec["params"], sort_keys=True)
        for n in names:
            v = rec["params"].get(n)
            flat[PARAM_PREFIX + n] = json.dumps(v) if v is not None and kinds[n][1] else v
        out.append(flat)
    schema = leaderboard_schema({n: t for n, (t, _) in kinds.items()})
    return pa.Table.from_pylist(out, schema=schema)


def table_to_rows(table: pa.Table) -> list[dict[str, Any]]:
    """The leaderboard rows of ``table`` as dicts (column -> value), in table (rank) order."""
    return table.to_pylist()
