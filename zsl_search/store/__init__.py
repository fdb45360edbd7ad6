"""The per-node feature store shared by every trial on a node."""

from ._memory import process_memory
from ._source import DataSource, check_source, load_dataset, load_split, resolve_dataset_dir
from ._store import (NAMESPACE, FeatureStore, fetch_classifier, fetch_split, get_store, release_stores,
                     store_actor_name)

__all__ = ["DataSource", "check_source", "load_dataset", "load_split", "resolve_dataset_dir", "NAMESPACE",
           "FeatureStore", "fetch_split", "fetch_classifier", "get_store", "release_stores", "store_actor_name",
           "process_memory"]
