"""Memory benchmark for the per-node feature store: four concurrent "trials" read the same
dataset through one store actor; each reports how much private (anonymous) memory reading the
features cost it. The baseline, measured in the same run, is a trial that copies the features
into its own memory, which is what loading the .mat file per trial amounts to.

    python -m bench.feature_store [--feat-dim 2048] [--scale 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import scratch_dir


def main(argv: list[str] | None = None) -> int:
    import ray

    from zsl_search.data import synthesize
    from zsl_search.store import DataSource, fetch_split, get_store, process_memory, release_stores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feat-dim", type=int, default=2048)
    parser.add_argument("--scale", type=float, default=2.0)
    args = parser.parse_args(argv)
    tmp = Path(scratch_dir("bench-store-"))
    root = synthesize(tmp / "BIG", preset="demo", scale=args.scale, feat_dim=args.feat_dim, seed=1)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        source = DataSource(path=str(root))
        store = get_store(source, search="bench", cache_dir=tmp)
        nbytes = ray.get(store.stats.remote())["nbytes"]

        @ray.remote(num_cpus=0.25)
        def trial(copy: bool) -> int:
            import torch  # noqa: F401  (imports are not what we measure)

            import zsl_search.data  # noqa: F401

            before = process_memory()["RssAnon"]
            split = fetch_split(get_store(source, search="bench", cache_dir=tmp))
            tensors = [split.train_x, split.seen_x, split.unseen_x]
            if copy:
                tensors = [t.clone() for t in tensors]
            float(sum(t.sum() for t in tensors))  # touch every page
            return process_memory()["RssAnon"] - before

        shared = ray.get([trial.remote(False) for _ in range(4)])
        copied = ray.get(trial.remote(True))
        stores = len(release_stores("bench"))
    finally:
        ray.shutdown()
    mb = 1 / 2**20
    print(f"dataset split in the object store: {nbytes * mb:.1f} MiB, {stores} store actor(s) on this node")
    print("private memory per trial, shared store: " + ", ".join(f"{s * mb:.1f} MiB" for s in shared))
    print(f"private memory, trial with its own copy (baseline): {copied * mb:.1f} MiB")
    ratio = max(shared) / max(copied, 1)
    print(f"shared / own copy = {ratio:.3f} (target < 0.1); 4 trials hold {4 * max(shared) * mb:.1f} MiB "
          f"instead of {4 * copied * mb:.1f} MiB")
    return 0 if ratio < 0.1 and stores == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
