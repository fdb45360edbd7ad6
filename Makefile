# `make demo` and `make test` work on a fresh machine: each creates .venv with plain pip if needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Two test processes, one per core: the suite is CPU-bound (both cores 96% busy on December 7),
# half of it Ray worker processes importing torch and Tune; a third process was no faster.
# `make test TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= 2

.PHONY: demo test test-slow bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -e '.[dev]'
	@# Byte-compiled here on every core at once: pip compiles file by file (a minute of the
	@# install on 2 cores). Without .pyc files every import of torch and Ray would compile them
	@# again where PYTHONDONTWRITEBYTECODE=1 is set, as on the project machines. Files that are
	@# not Python 3.11 (package templates) are skipped, as pip skips them, and so are the packages'
	@# own test suites (a fifth of the files; nothing imports them).
	$(PY) -c "import compileall, re, sysconfig; compileall.compile_dir(sysconfig.get_path('purelib'), quiet=2, workers=0, rx=re.compile(r'/tests?/'))"
	touch $(STAMP)

# Each demo run is a new search (quickstart-YYYYmmdd-HHMMSS) under ./zsl-results; it ends by
# printing that search's leaderboard.
demo: $(STAMP)
	@name=quickstart-$$(date +%Y%m%d-%H%M%S); \
	$(VENV)/bin/zsl-search search run experiments/quickstart.yaml --name $$name --top 3 && \
	echo && echo "Leaderboard ./zsl-results/$$name (validation H; the test split was never read):" && \
	$(VENV)/bin/zsl-search leaderboard show ./zsl-results --search $$name --top 10

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder $(PYTEST_ARGS)

# The end-to-end checks `make test` leaves out (pytest -m slow): 20 s to over a minute each on 2 cores.
test-slow: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m slow $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf zsl-results .pytest_cache
