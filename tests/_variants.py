"""The variants the contract suites (tests/test_models.py, tests/test_train.py) run: every
registered variant, so a new one is tested the moment it registers. The test-only plugin
`_sixth_variant` is loaded here, as ``ZSL_SEARCH_PLUGINS`` would load it, so the suites prove
that a variant written against `zsl_search.models.base` alone passes them."""

from __future__ import annotations

from zsl_search.models import load_plugins, variant_names

PLUGINS = ["_sixth_variant"]
BUILT_IN = ["cgan", "cosgan", "fclswgan", "filmwgan", "zswgan"]
# `fragile` (tests/_fragile_variant.py) is fault injection for the search tests, registered when
# one of them has run in this process: no per-dataset defaults, nothing to learn. Not a contract case.
FAULT_INJECTION = {"fragile"}

load_plugins(PLUGINS)


def contract_variants() -> list[str]:
    """The registered variants (built-ins and plugins), fault injection left out."""
    return [name for name in variant_names() if name not in FAULT_INJECTION]
