"""Plots of one search's leaderboard (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import LeaderboardError
from ._reader import read_rows

__all__ = ["plot_search"]

Row = dict[str, Any]


def _best_so_far(rows: Sequence[Row]) -> tuple[list[float], list[float]]:
    """(completed_order, running max of H) over non-ERROR rows, in completion order."""
    done = sorted((r for r in rows if r["status"] != "ERROR" and r["H"] is not None),
                  key=lambda r: (r["completed_order"] is None, r["completed_order"] or 0, r["created_at"]))
    xs, best, top = [], [], float("-inf")
    for i, r in enumerate(done, start=1):
        top = max(top, r["H"])
        xs.append(float(r["completed_order"]) if r["completed_order"] is not None else float(i))
        best.append(top)
    return xs, best


def _elapsed(rows: Sequence[Row]) -> dict[str, float]:
    """Wall seconds from the search's start (earliest ``created_at - seconds``) to each row."""
    starts = [r["created_at"].timestamp() - (r["seconds"] or 0.0) for r in rows]
    t0 = min(starts)
    return {r["trial_id"]: r["created_at"].timestamp() - t0 for r in rows}


def plot_search(storage_uri: str, search: str, *, out_dir: str | Path) -> list[Path]:
    """Write PNG plots of ``search`` into ``out_dir`` (created if missing) and return their paths:

    * ``<search>_best_H_vs_trials.png``: best validation H so far against completed trials;
    * ``<search>_best_H_vs_time.png``: the same against wall time since the search started;
    * ``<search>_U_vs_S.png``: every trial's U against S, the Pareto front drawn as a step line;
    * ``<search>_H_per_variant.png``: H per GAN variant (box plot with the trials as points).

    Raises:
        SearchNotFound: no leaderboard for ``search`` under ``storage_uri``.
        StorageError: the storage cannot be read.
        LeaderboardError: the search has no rows, or ``out_dir`` cannot be written.
    """
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on cluster nodes
    import matplotlib.pyplot as plt

    rows = read_rows(storage_uri, search)
    if not rows:
        raise LeaderboardError(f"search {search!r} under {storage_uri} has no trials to plot yet; run or sync it first")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LeaderboardError(f"{out}: exists and is not a directory; pass a directory as --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LeaderboardError(f"{out}: cannot create the plot directory ({e.strerror}); pass a writable --out "
                               "directory") from e
    ok = [r for r in rows if r["status"] != "ERROR" and r["H"] is not None]
    paths: list[Path] = []

    def save(fig: Any, name: str) -> None:
        path = out / f"{search}_{name}.png"
        fig.tight_layout()
        try:
            fig.savefig(path, dpi=100)
        except OSError as e:
            raise LeaderboardError(f"{path}: cannot write the plot ({e.strerror}); pass a writable --out "
                                   "directory") from e
        finally:
            plt.close(fig)
        paths.append(path)

    xs, best = _best_so_far(rows)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.step(xs, best, where="post", marker="o", markersize=3)
    ax.set(xlabel="completed trials (completed_order)", ylabel="best validation H so far", title=search)
    ax.grid(alpha=0.3)
    save(fig, "best_H_vs_trials")

    elapsed = _elapsed(rows)
    done = sorted(ok, key=lambda r: elapsed[r["trial_id"]])
    times = [elapsed[r["trial_id"]] / 60.0 for r in done]
    running = [max(r["H"] for r in done[: i + 1]) for i in range(len(done))]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.step(times, running, where="post", marker="o", markersize=3)
    ax.set(xlabel="wall time since search start (min)", ylabel="best validation H so far", title=search)
    ax.grid(alpha=0.3)
    save(fig, "best_H_vs_time")

    fig, ax = plt.subplots(figsize=(5, 5))
    variants = sorted({r["variant"] for r in ok})
    for v in variants:
        pts = [r for r in ok if r["variant"] == v]
        ax.scatter([r["S"] for r in pts], [r["U"] for r in pts], s=18, alpha=0.7, label=v)
    front = sorted((r for r in ok if r["pareto"]), key=lambda r: r["S"])
    if front:
        ax.plot([r["S"] for r in front], [r["U"] for r in front], "k--", lw=1, drawstyle="steps-pre",
                label="Pareto front")
        ax.scatter([r["S"] for r in front], [r["U"] for r in front], s=60, facecolors="none", edgecolors="k")
    ax.set(xlabel="S (seen accuracy)", ylabel="U (unseen accuracy)", title=f"{search}: U vs S")
    ax.grid(alpha=0.3)
    if variants:
        ax.legend(fontsize=8)
    save(fig, "U_vs_S")

    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(variants) + 2), 4))
    groups = [[r["H"] for r in ok if r["variant"] == v] for v in variants]
    if groups:
        ax.boxplot(groups, showfliers=False)
        for i, g in enumerate(groups, start=1):
            jitter = [i + 0.15 * ((k * 0.618) % 1 - 0.5) for k in range(len(g))]  # deterministic spread
            ax.scatter(jitter, g, s=12, alpha=0.7, color="tab:blue")
        ax.set_xticks(range(1, len(variants) + 1), variants)
    ax.set(xlabel="variant", ylabel="validation H", title=f"{search}: H per variant")
    ax.grid(alpha=0.3, axis="y")
    save(fig, "H_per_variant")
    return paths
