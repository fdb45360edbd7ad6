"""Tests for zsl_search.leaderboard: ranking and Pareto rules on hand-made rows, the file formats
(Parquet round trip, pandas, duckdb, CSV, markdown), the writer on a local directory and on the
real S3 fixture (including an outage: spool, then upload by the next write and by sync_pending),
finalize's test columns, and the plots."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from zsl_search import __version__
from zsl_search.errors import StorageError, ZslSearchError
from zsl_search.leaderboard import (
    LeaderboardError,
    LeaderboardWriter,
    SearchNotFound,
    format_rows,
    leaderboard_schema,
    list_searches,
    pareto_flags,
    pending_searches,
    plot_search,
    rank_rows,
    read_leaderboard,
    read_rows,
    rows_to_table,
    sync_pending,
    table_to_rows,
    update_test_columns,
)
from zsl_search.storage import open_storage

T0 = datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own spool directory."""
    monkeypatch.setenv("ZSL_SEARCH_CACHE", str(tmp_path / "cache"))


def row(tid: str, h: float | None, u: float | None, s: float | None, *, status: str = "COMPLETE",
        order: int = 0, variant: str = "fclswgan", search: str = "srch", **extra: Any) -> dict[str, Any]:
    """One input row as the search hands it over."""
    params = {"fclswgan": {"lr": 1e-4, "n_critic": 5, "cls_weight": 0.01},
              "cgan": {"lr": 2e-4, "hidden": 4096, "use_bn": True}}.get(variant, {"lr": 1e-3})
    return {
        "trial_id": tid, "search": search, "dataset": "CUB", "protocol": "validation", "variant": variant,
        "status": status, "epochs": 30, "best_epoch": 21, "H": h, "U": u, "S": s, "zsl_acc": 0.5,
        "retrieval_map": 0.3, "seconds": 12.5, "seed": 0, "node_id": None, "params": params,
        "created_at": T0 + timedelta(seconds=10 * order), "completed_order": order, **extra,
    }


def sample_rows(search: str = "srch", n: int = 6, start: int = 0) -> list[dict[str, Any]]:
    variants = ["fclswgan", "cgan", "other"]
    out = [row(f"t{i:03d}", 0.3 + 0.03 * ((i * 7) % n), 0.2 + 0.02 * i, 0.7 - 0.03 * i, order=i,
               variant=variants[i % 3], search=search, node_id=f"node-{i % 2}")
           for i in range(start, start + n)]
    out[-1] = {**out[-1], "status": "ERROR", "H": None, "U": None, "S": None}
    return out


# ---------------------------------------------------------------- ranking and Pareto


def test_rank_by_h_then_u_then_completed_order_then_trial_id() -> None:
    rows = [
        row("a", 0.50, 0.40, 0.60, order=3),
        row("b", 0.60, 0.50, 0.70, order=5),
        row("c", 0.50, 0.45, 0.55, order=4),  # same H as a, higher U -> before a
        row("d", 0.50, 0.40, 0.60, order=1),  # same H and U as a, finished earlier -> before a
        row("e", 0.50, 0.40, 0.60, order=1),  # identical to d: trial_id decides
    ]
    ranked = rank_rows(rows)
    assert [r["trial_id"] for r in ranked] == ["b", "c", "d", "e", "a"]
    assert [r["rank"] for r in ranked] == [1, 2, 3, 4, 5]


def test_error_rows_rank_last_and_are_never_pareto() -> None:
    rows = [
        row("err", 0.99, 0.99, 0.99, status="ERROR", order=0),  # best numbers, but failed
        row("ok", 0.10, 0.10, 0.10, order=1),
        row("nan", None, None, None, status="ERROR", order=2),
        row("early", 0.20, 0.10, 0.40, status="EARLY_STOPPED", order=3),
    ]
    ranked = rank_rows(rows)
    assert [r["trial_id"] for r in ranked] == ["early", "ok", "err", "nan"]
    assert {r["trial_id"]: r["pareto"] for r in ranked} == {"early": True, "ok": False, "err": False, "nan": False}


def test_pareto_flags_dominated_duplicates_and_ties() -> None:
    rows = [
        row("front-high-u", 0.5, 0.8, 0.2),
        row("front-mid", 0.5, 0.5, 0.5),
        row("dup-of-mid", 0.5, 0.5, 0.5),  # exact duplicates: neither dominates the other
        row("dominated", 0.4, 0.4, 0.4),  # below front-mid on both
        row("weakly-dominated", 0.4, 0.5, 0.45),  # equal U, lower S
        row("front-high-s", 0.3, 0.1, 0.9),
        row("same-s-lower-u", 0.2, 0.05, 0.9),  # equal S, lower U
        row("error", 0.9, 1.0, 1.0, status="ERROR"),  # would dominate all, but ERROR rows don't count
    ]
    flags = dict(zip([r["trial_id"] for r in rows], pareto_flags(rows), strict=True))
    assert flags == {
        "front-high-u": True, "front-mid": True, "dup-of-mid": True, "dominated": False,
        "weakly-dominated": False, "front-high-s": True, "same-s-lower-u": False, "error": False,
    }


def test_pareto_flags_match_brute_force() -> None:
    import random

    rng = random.Random(0)
    rows = [row(f"t{i}", 0.5, rng.choice([0.1, 0.2, 0.3, 0.4]), rng.choice([0.1, 0.2, 0.3]),
                status=rng.choice(["COMPLETE", "COMPLETE", "ERROR"])) for i in range(60)]
    ok = [r for r in rows if r["status"] != "ERROR"]

    def dominated(r: dict[str, Any]) -> bool:
        return any(o["U"] >= r["U"] and o["S"] >= r["S"] and (o["U"] > r["U"] or o["S"] > r["S"]) for o in ok)

    assert pareto_flags(rows) == [r["status"] != "ERROR" and not dominated(r) for r in rows]


# ---------------------------------------------------------------- schema and validation


def test_table_schema_params_union_and_config_json() -> None:
    table = rows_to_table(sample_rows())
    names = table.column_names
    assert names[:3] == ["rank", "search", "trial_id"]
    params = [n for n in names if n.startswith("param_")]
    assert params == ["param_cls_weight", "param_hidden", "param_lr", "param_n_critic", "param_use_bn"]
    for col in ("test_U_mean", "test_H_std", "test_seeds", "completed_order", "node_id", "version", "created_at", "pareto"):
        assert col in names
    rows = table_to_rows(table)
    cgan = next(r for r in rows if r["variant"] == "cgan")
    assert cgan["param_hidden"] == 4096 and cgan["param_use_bn"] is True and cgan["param_n_critic"] is None
    assert json.loads(cgan["config_json"]) == {"lr": 2e-4, "hidden": 4096, "use_bn": True}
    assert cgan["version"] == __version__ and cgan["created_at"].tzinfo is not None
    assert table.schema.field("param_hidden").type == "int64"
    fixed = leaderboard_schema()
    assert not any(n.startswith("param_") for n in fixed.names)


@pytest.mark.parametrize("bad, match", [
    ({"status": "DONE"}, "status 'DONE'"),
    ({"trial_id": ""}, "no trial_id"),
    ({"H": None}, "needs numeric H, U and S"),
    ({"bogus": 1}, "unknown row key"),
    ({"epochs": 2.5}, "not an integer"),
    ({"created_at": "yesterday"}, "ISO 8601"),
    ({"search": "other"}, "belongs to search 'other'"),
])
def test_invalid_rows_are_rejected_before_any_write(tmp_path: Path, bad: dict[str, Any], match: str) -> None:
    writer = LeaderboardWriter(str(tmp_path / "res"), "srch")
    with pytest.raises(LeaderboardError, match=match):
        writer.write([{**row("t1", 0.5, 0.5, 0.5), **bad}])
    assert open_storage(str(tmp_path / "res")).list() == []


def test_invalid_search_name(tmp_path: Path) -> None:
    for name in ("", "a/b", "_index", "../x"):
        with pytest.raises(LeaderboardError, match="invalid search name"):
            LeaderboardWriter(str(tmp_path), name)


# ---------------------------------------------------------------- files on a local storage


def test_local_write_and_every_format(tmp_path: Path) -> None:
    import duckdb
    import pandas as pd

    root = tmp_path / "res"
    rows = sample_rows()
    assert LeaderboardWriter(str(root), "srch").write(rows) is True
    expected = rows_to_table(rows)

    table = read_leaderboard(str(root), "srch")
    assert table.equals(expected, check_metadata=True)
    assert table.schema.equals(expected.schema)
    assert read_rows(str(root), "srch") == table_to_rows(expected)

    parquet = root / "srch" / "leaderboard.parquet"
    df = pd.read_parquet(parquet)
    assert list(df.columns) == expected.column_names and len(df) == len(rows)
    assert df["trial_id"].iloc[0] == expected.column("trial_id")[0].as_py()
    db = duckdb.sql(f"select * from '{parquet}'")
    assert db.columns == expected.column_names and db.arrow().read_all().num_rows == len(rows)  # fetchall() of TIMESTAMPTZ needs pytz
    assert duckdb.sql(f"select count(*), max(H) from '{parquet}'").fetchall() == [
        (len(rows), max(r["H"] for r in rows if r["H"] is not None))]

    csv = pd.read_csv(root / "srch" / "leaderboard.csv")
    assert list(csv.columns) == expected.column_names and len(csv) == len(rows)
    assert csv["H"].iloc[0] == pytest.approx(expected.column("H")[0].as_py(), abs=0)

    md = (root / "srch" / "leaderboard.md").read_text().splitlines()
    assert md[0].startswith("| rank | trial_id | variant | H | U | S | zsl_acc | epochs | status |") and md[0].endswith("|")
    assert set(md[1].replace(" ", "").strip("|").split("|")) == {"---"}
    assert len(md) == 2 + len(rows) and all(line.startswith("| ") and line.endswith(" |") for line in md)
    assert md[1].count("|") == md[2].count("|") == md[0].count("|")
    assert [line.split(" | ")[1] for line in md[2:]] == expected.column("trial_id").to_pylist()  # a row names its trial

    index = list_searches(str(root))
    assert [e["name"] for e in index] == ["srch"]
    assert index[0]["n_trials"] == len(rows) and index[0]["dataset"] == "CUB"
    assert index[0]["best_H"] == expected.column("H")[0].as_py()


def test_format_rows_filters_and_formats(tmp_path: Path) -> None:
    import pandas as pd

    LeaderboardWriter(str(tmp_path), "srch").write(sample_rows())
    rows = read_rows(str(tmp_path), "srch")
    top2 = json.loads(format_rows(rows, fmt="json", top=2))
    assert [r["rank"] for r in top2] == [1, 2]
    only_cgan = json.loads(format_rows(rows, fmt="json", variant="cgan"))
    assert only_cgan and all(r["variant"] == "cgan" for r in only_cgan)
    text = format_rows(rows, fmt="table", top=3).splitlines()
    assert text[0].split()[:3] == ["rank", "trial_id", "variant"] and len(text) == 4
    assert len(pd.read_csv(io.StringIO(format_rows(rows, fmt="csv", variant="cgan")))) == len(only_cgan)
    assert format_rows(rows, fmt="md", top=1).count("\n") == 3
    with pytest.raises(LeaderboardError, match="unknown leaderboard format"):
        format_rows(rows, fmt="xml")  # type: ignore[arg-type]
    # A trial shows the same key params whichever filter picked it.
    def key_params(text: str, tid: str) -> str:
        return next(line for line in text.splitlines() if f" {tid} " in line).split("  ")[-1]

    for fmt in ("table", "md"):
        full = format_rows(rows, fmt=fmt)
        for tid in (r["trial_id"] for r in rows):
            alone = format_rows([r for r in rows if r["trial_id"] == tid], fmt=fmt)  # its own table: its first few
            picked = format_rows(rows, fmt=fmt, variant=next(r["variant"] for r in rows if r["trial_id"] == tid))
            assert key_params(picked, tid) == key_params(full, tid), (fmt, tid)
            assert alone.count("\n") == (2 if fmt == "table" else 3)
    # No row to show: CSV keeps its header (the stored columns, or the schema's with none stored).
    header = format_rows(rows, fmt="csv", variant="nope").splitlines()
    assert header == [",".join(rows[0])]
    from zsl_search.leaderboard import leaderboard_schema

    assert format_rows([], fmt="csv").splitlines() == [",".join(leaderboard_schema().names)]


def test_an_index_entry_of_a_search_without_rows_says_its_dataset_and_protocol(tmp_path: Path) -> None:
    LeaderboardWriter(str(tmp_path), "empty", dataset="DEMO", protocol="validation").write([])
    assert list_searches(str(tmp_path))[0] | {"updated_at": None} == {
        "name": "empty", "dataset": "DEMO", "protocol": "validation", "n_trials": 0, "best_H": None,
        "best_variant": None, "updated_at": None}
    LeaderboardWriter(str(tmp_path), "rows", dataset="IGNORED").write(sample_rows("rows"))  # the rows say it
    assert {e["name"]: e["dataset"] for e in list_searches(str(tmp_path))} == {"empty": "DEMO", "rows": "CUB"}


def test_missing_search_names_existing_ones(tmp_path: Path) -> None:
    LeaderboardWriter(str(tmp_path), "alpha").write(sample_rows("alpha"))
    LeaderboardWriter(str(tmp_path), "beta").write(sample_rows("beta"))
    with pytest.raises(SearchNotFound, match=r"no search 'gamma' under .*; searches there: alpha, beta") as info:
        read_leaderboard(str(tmp_path), "gamma")
    assert isinstance(info.value, StorageError) and isinstance(info.value, ZslSearchError)


def test_writes_merge_by_trial_id_newest_wins(tmp_path: Path) -> None:
    rows = sample_rows()
    LeaderboardWriter(str(tmp_path), "srch").write(rows[:3])
    # A fresh writer (e.g. a resumed search) picks up what is stored and adds to it.
    writer = LeaderboardWriter(str(tmp_path), "srch")
    writer.write(rows[3:])
    writer.write([{**rows[0], "H": 0.99, "U": 0.9, "S": 0.95}])
    stored = read_rows(str(tmp_path), "srch")
    assert sorted(r["trial_id"] for r in stored) == sorted(r["trial_id"] for r in rows)
    assert stored[0]["trial_id"] == rows[0]["trial_id"] and stored[0]["H"] == 0.99


def test_update_test_columns(tmp_path: Path) -> None:
    rows = sample_rows()
    LeaderboardWriter(str(tmp_path), "srch").write(rows)
    results = {"t000": {"test_U_mean": 0.41, "test_U_std": 0.01, "test_S_mean": 0.6, "test_S_std": 0.02,
                        "test_H_mean": 0.49, "test_H_std": 0.015, "test_seeds": [0, 1, 2]}}
    assert update_test_columns(str(tmp_path), "srch", results=results) is True
    by_id = {r["trial_id"]: r for r in read_rows(str(tmp_path), "srch")}
    assert by_id["t000"]["test_seeds"] == [0, 1, 2] and by_id["t000"]["test_H_mean"] == 0.49
    assert by_id["t001"]["test_seeds"] is None and by_id["t001"]["test_H_mean"] is None
    assert "test_H_mean" in format_rows(list(by_id.values()), fmt="table")
    md = (tmp_path / "srch" / "leaderboard.md").read_text().splitlines()
    assert "| test_H_mean | test_H_std |" in md[0] and any("| 0.4900 | 0.0150 |" in line for line in md)  # stored too
    assert "test_H_mean" not in format_rows(rows, fmt="md")  # not before finalize
    # A later rewrite of the trial without test keys keeps its test results.
    LeaderboardWriter(str(tmp_path), "srch").write([rows[0]])
    assert {r["trial_id"]: r for r in read_rows(str(tmp_path), "srch")}["t000"]["test_H_mean"] == 0.49
    with pytest.raises(LeaderboardError, match="no trial 'nope'"):
        update_test_columns(str(tmp_path), "srch", results={"nope": {"test_H_mean": 0.1}})
    with pytest.raises(LeaderboardError, match="unknown test key"):
        update_test_columns(str(tmp_path), "srch", results={"t000": {"test_X": 0.1}})
    with pytest.raises(SearchNotFound):
        update_test_columns(str(tmp_path), "missing", results={})


def test_plots_are_nonempty_pngs(tmp_path: Path) -> None:
    LeaderboardWriter(str(tmp_path / "res"), "srch").write(sample_rows(n=9))
    paths = plot_search(str(tmp_path / "res"), "srch", out_dir=tmp_path / "plots")
    assert len(paths) == 4
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1024, p


# ---------------------------------------------------------------- real S3 (SeaweedFS)


@pytest.fixture(scope="module")
def s3_root(s3_server) -> str:
    bucket = s3_server.make_bucket(f"zsl-lb-{uuid.uuid4().hex[:8]}")
    return f"s3://{bucket}/results"


def test_s3_write_and_read_back_identically(s3_root: str) -> None:
    rows = sample_rows("s3-one")
    assert LeaderboardWriter(s3_root, "s3-one").write(rows) is True
    assert read_leaderboard(s3_root, "s3-one").equals(rows_to_table(rows), check_metadata=True)
    store = open_storage(s3_root)
    assert {"s3-one/leaderboard.parquet", "s3-one/leaderboard.csv", "s3-one/leaderboard.md",
            "_index/s3-one.json"} <= set(store.list())


def test_s3_two_searches_under_one_prefix_do_not_clobber(s3_root: str) -> None:
    a, b = sample_rows("s3-a", n=4), sample_rows("s3-b", n=5, start=10)
    wa, wb = LeaderboardWriter(s3_root, "s3-a"), LeaderboardWriter(s3_root, "s3-b")
    # Interleaved, as two concurrent searches would write.
    assert wa.write(a[:2]) and wb.write(b[:2]) and wa.write(a[2:]) and wb.write(b[2:])
    assert read_leaderboard(s3_root, "s3-a").equals(rows_to_table(a))
    assert read_leaderboard(s3_root, "s3-b").equals(rows_to_table(b))
    index = {e["name"]: e for e in list_searches(s3_root)}
    assert {"s3-a", "s3-b"} <= set(index)
    assert index["s3-a"]["n_trials"] == 4 and index["s3-b"]["n_trials"] == 5


def test_s3_outage_spools_then_next_write_and_sync_pending_upload_everything(
    s3_server, s3_root: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ZSL_S3_RETRIES", "1")
    monkeypatch.setenv("ZSL_S3_BACKOFF", "0.05")
    rows_a = sample_rows("out-a", n=8)
    rows_b = sample_rows("out-b", n=6, start=20)
    wa, wb = LeaderboardWriter(s3_root, "out-a"), LeaderboardWriter(s3_root, "out-b")
    assert wa.write(rows_a[:3]) and wb.write(rows_b[:2])

    s3_server.stop()
    try:
        assert wa.write(rows_a[3:5]) is False
        assert wa.write(rows_a[5:6]) is False
        assert wb.write(rows_b[2:]) is False
        assert sorted(pending_searches(s3_root)) == [(wa.storage_uri, "out-a"), (wa.storage_uri, "out-b")]
        assert sync_pending(s3_root).still_pending  # still down: nothing lost, nothing raised
    finally:
        s3_server.start()
    assert "spooled" in caplog.text and "zsl-test-secret-key" not in caplog.text

    # Path 1: the next successful write of a search uploads its spool too.
    assert wa.write(rows_a[6:]) is True
    assert read_leaderboard(s3_root, "out-a").equals(rows_to_table(rows_a))
    assert pending_searches(s3_root) == [(wa.storage_uri, "out-b")]

    # Path 2: sync_pending uploads what no writer will write again (e.g. the search crashed).
    result = sync_pending()
    assert result.uploaded == [(wa.storage_uri, "out-b")] and not result.still_pending
    assert read_leaderboard(s3_root, "out-b").equals(rows_to_table(rows_b))
    assert pending_searches() == []
    assert {e["name"]: e["n_trials"] for e in list_searches(s3_root)}["out-b"] == len(rows_b)


def test_reading_a_missing_folder_or_a_damaged_table_names_the_problem(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    with pytest.raises(StorageError, match="no such directory"):
        list_searches(str(tmp_path / "typo"))
    assert not (tmp_path / "typo").exists()
    root = tmp_path / "res"
    LeaderboardWriter(str(root), "srch").write(sample_rows())
    parquet = root / "srch" / "leaderboard.parquet"
    pq.write_table(pq.read_table(parquet).drop(["H"]), parquet)
    with pytest.raises(LeaderboardError, match="no H column"):
        read_rows(str(root), "srch")
    parquet.unlink()  # still in the index: say the file is missing, not that the search is
    with pytest.raises(SearchNotFound, match="leaderboard.parquet: missing, though search 'srch' is indexed"):
        read_rows(str(root), "srch")


def test_cli_show_names_a_missing_folder_and_an_absent_variant(tmp_path: Path, capsys) -> None:
    from zsl_search.cli import main

    root = tmp_path / "res"
    rows = sample_rows()
    LeaderboardWriter(str(root), "srch").write(rows)
    assert main(["leaderboard", "show", str(tmp_path / "rse")]) == 2
    assert "rse: no such directory" in capsys.readouterr().err and not (tmp_path / "rse").exists()
    assert main(["leaderboard", "show", str(root), "--search", "srch", "--variant", "stylegan"]) == 2
    err = capsys.readouterr().err
    assert "--variant stylegan: search 'srch' has no rows of it; its variants: " in err
    present = sorted({r["variant"] for r in rows})
    assert main(["leaderboard", "show", str(root), "--search", "srch", "--variant", present[0]]) == 0
    assert present[0] in capsys.readouterr().out
    assert main(["leaderboard", "show", str(root), "--search", "srch", "--top", "0"]) == 2
    assert capsys.readouterr().err == "zsl-search: error: --top 0: must be >= 1 (the number of best trials to show)\n"


@pytest.mark.parametrize("entry", ["[1]", "{}", "null", '"s"', '{"name": "srch", "best_H": "x"}',
                                   '{"name": "srch", "n_trials": true}', '{"name": "other"}'])
def test_cli_show_names_an_index_entry_of_the_wrong_shape_and_lists_the_others(tmp_path: Path, capsys,
                                                                                 entry: str) -> None:
    """Valid JSON that is no index entry is reported like a JSON syntax error: one warning line
    naming the file, and the searches whose entries are fine are listed still."""
    from zsl_search.cli import main

    root = tmp_path / "res"
    LeaderboardWriter(str(root), "srch").write(sample_rows())
    LeaderboardWriter(str(root), "fine").write(sample_rows("fine", n=2))
    index = root / "_index" / "srch.json"
    index.write_text(entry)
    assert main(["leaderboard", "show", str(root)]) == 0
    out, err = capsys.readouterr()
    assert err.startswith(f"warning: {index}: corrupt index entry (") and err.count("\n") == 1
    assert "left out of the list; delete it, the next write of search 'srch' recreates it" in err
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["fine"]
    assert index.read_text() == entry  # nothing is rewritten by a read


def test_cli_show_lists_searches_in_every_format_and_refuses_trial_filters(tmp_path: Path, capsys) -> None:
    """Without --search, --format applies to the list of searches; --top and --variant pick trials
    of one search, so they ask for --search instead of being ignored."""
    import csv

    from zsl_search.cli import main

    root = tmp_path / "res"
    LeaderboardWriter(str(root), "srch").write(sample_rows())
    LeaderboardWriter(str(root), "other").write(sample_rows("other", n=3))
    assert main(["leaderboard", "show", str(root), "--format", "csv"]) == 0
    listed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["name"], r["n_trials"]) for r in listed] == [("other", "3"), ("srch", "6")]
    assert main(["leaderboard", "show", str(root), "--format", "md"]) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0].startswith("| name | dataset |") and md[1].startswith("| --- |") and len(md) == 4
    assert main(["leaderboard", "show", str(root), "--format", "json"]) == 0
    assert [e["name"] for e in json.loads(capsys.readouterr().out)] == ["other", "srch"]
    for flag in (["--top", "1"], ["--variant", "cgan"]):
        assert main(["leaderboard", "show", str(root), *flag]) == 2
        err = capsys.readouterr().err
        assert f"{flag[0]} picks trials of one search: add --search NAME" in err and err.count("\n") == 1


def test_the_search_list_shows_a_search_without_rows_as_dashes() -> None:
    # Every trial failed: no dataset, no best H, which is not an H of 0.
    from zsl_search.leaderboard import format_searches

    line = format_searches([{"name": "failed", "dataset": None, "protocol": None, "n_trials": 0, "best_H": None,
                             "best_variant": None}]).splitlines()[1]
    assert line.split() == ["failed", "-", "-", "0", "-", "-"]
    line = format_searches([{"name": "ok", "dataset": "DEMO", "protocol": "validation", "n_trials": 4, "best_H": 0.5,
                             "best_variant": "cgan"}]).splitlines()[1]
    assert line.split() == ["ok", "DEMO", "validation", "4", "0.5000", "cgan"]


def test_cli_plot_names_the_out_flag(tmp_path: Path, capsys) -> None:
    from zsl_search.cli import main

    root = tmp_path / "res"
    LeaderboardWriter(str(root), "srch").write(sample_rows())
    afile = tmp_path / "afile"
    afile.write_text("keep")
    for out in (afile, afile / "plots"):
        assert main(["leaderboard", "plot", str(root), "--search", "srch", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"zsl-search: error: {out}") and "--out" in err and "out_dir" not in err
    assert afile.read_text() == "keep"
    assert main(["leaderboard", "plot", str(root), "--search", "srch", "--out", ""]) == 2
    assert "--out is empty" in capsys.readouterr().err and not list(Path.cwd().glob("srch*.png"))


def test_cli_sync_of_a_mistyped_local_path_says_so_and_creates_nothing(tmp_path: Path, capsys) -> None:
    from zsl_search.cli import main

    assert main(["leaderboard", "sync", str(tmp_path / "nodir")]) == 2
    assert "no such directory" in capsys.readouterr().err and not (tmp_path / "nodir").exists()
    assert main(["leaderboard", "sync", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "nothing to sync\n"


def test_json_listings_hold_null_where_a_value_is_nan() -> None:
    from zsl_search.leaderboard import format_searches

    entry = {"name": "s", "dataset": "DEMO", "protocol": "validation", "n_trials": 1, "best_H": float("nan"),
             "best_variant": None}
    assert json.loads(format_searches([entry], fmt="json"))[0]["best_H"] is None


def test_cli_show_of_a_search_folder_points_at_its_storage_root(tmp_path: Path, capsys) -> None:
    from zsl_search.cli import main

    root = tmp_path / "res"
    LeaderboardWriter(str(root), "srch").write(sample_rows())
    assert main(["leaderboard", "show", str(root / "srch")]) == 2
    err = capsys.readouterr().err
    assert f"is the folder of search 'srch', not a storage root; use `zsl-search leaderboard show {root} --search srch`" in err
    assert main(["leaderboard", "show", str(root)]) == 0 and "srch" in capsys.readouterr().out


def test_cli_show_and_plot_say_the_search_name_rule_of_search_run(tmp_path: Path, capsys) -> None:
    from zsl_search.cli import main
    from zsl_search._names import SEARCH_NAME_RULE

    root = tmp_path / "res"
    LeaderboardWriter(str(root), "srch").write(sample_rows())
    for argv in (["show", str(root), "--search", "My.Search"],
                 ["plot", str(root), "--search", "My.Search", "--out", str(tmp_path / "plots")]):
        assert main(["leaderboard", *argv]) == 2
        assert capsys.readouterr().err == (f"zsl-search: error: 'My.Search' is not a search name ({SEARCH_NAME_RULE}); "
                                           "searches there: srch\n")
    assert not (tmp_path / "plots").exists()


def test_reading_results_imports_neither_torch_nor_ray(tmp_path: Path) -> None:
    # `leaderboard show`, `plot` and `sync` only read and copy tables: importing torch for them
    # cost 2.3 s a command.
    root = tmp_path / "res"
    LeaderboardWriter(str(root), "srch").write(sample_rows())
    code = ("import sys; from zsl_search.cli import main; "
            f"codes = [main(['leaderboard', *a]) for a in ({['show', str(root)]!r}, {['show', str(root), '--search', 'srch']!r}, "
            f"{['plot', str(root), '--search', 'srch', '--out', str(tmp_path / 'plots')]!r}, {['show', str(root), '--search', 'No.Such']!r}, "
            f"{['sync', str(root)]!r})]; "
            "assert codes == [0, 0, 0, 2, 0], codes; "
            "assert not {'torch', 'ray'} & set(sys.modules), sorted({'torch', 'ray'} & set(sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "srch" in done.stdout and list((tmp_path / "plots").glob("*.png"))
