"""The leaderboard of a search: one ranked Parquet table per search (plus CSV and markdown
renderings) under the results storage, an index of all searches, reading, formatting and plots.

Layout under a storage root (local directory or ``s3://bucket/prefix``)::

    <search>/leaderboard.parquet   the table (schema: `leaderboard_schema`), best validation H first
    <search>/leaderboard.csv       every column
    <search>/leaderboard.md        GitHub markdown: rank, trial_id, variant, H, U, S, zsl_acc, epochs, status, key params
    _index/<search>.json           name, dataset, protocol, n_trials, best_H, best_variant, updated_at

Input row (one per trial) handed to `LeaderboardWriter.write`::

    {"trial_id": str, "search": str, "dataset": str, "protocol": str, "variant": str,
     "status": one of STATUSES, "error": str | None, "restarts": int, "epochs": int, "best_epoch": int,
     "best_step": int, "schedule_steps": int, "cls_epochs": int, "selected_on_test": bool, "evaluator": str,
     "H": float, "U": float, "S": float, "zsl_acc": float, "retrieval_map": float,
     "seconds": float, "startup_s": float | None, "seed": int, "node_id": str | None, "params": {name: value},
     "created_at": datetime | ISO str, "completed_order": int}

Only trial_id, variant and status (and H, U, S unless ERROR) are required; finalize adds the
``test_*`` columns with `update_test_columns`. When the storage is down, rows are spooled locally
(``settings.spool_dir()``) and uploaded by the next successful write or by `sync_pending`.

Example:
    >>> writer = LeaderboardWriter("s3://bucket/results", "cub-fclswgan")
    >>> writer.write(rows)                      # True: uploaded; False: spooled
    >>> print(format_rows(read_rows("s3://bucket/results", "cub-fclswgan"), fmt="md", top=5))
"""

from __future__ import annotations

from ..errors import LeaderboardError, SearchNotFound
from ._format import FORMATS, format_rows, format_searches
from ._plot import plot_search
from ._rank import pareto_flags, rank_rows
from ._reader import list_searches, read_leaderboard, read_rows
from ._schema import STATUSES, TEST_COLUMNS, leaderboard_schema, normalize_row, rows_to_table, table_to_rows
from ._writer import LeaderboardWriter, SyncResult, pending_searches, sync_pending, update_test_columns

__all__ = [
    "LeaderboardWriter", "SyncResult", "sync_pending", "pending_searches", "update_test_columns",
    "read_leaderboard", "read_rows", "list_searches", "format_rows", "format_searches", "FORMATS", "plot_search",
    "rank_rows", "pareto_flags", "leaderboard_schema", "rows_to_table", "table_to_rows", "normalize_row",
    "STATUSES", "TEST_COLUMNS", "LeaderboardError", "SearchNotFound",
]
