# Liftboard: `make run` sets up, migrates the state DB, generates the demo marketplace, builds and serves;
# `make test` sets up and tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export LIFTBOARD_HOME ?= $(CURDIR)/data
SCALE  ?= demo
PORT   ?= 8501

# What the linters read: every package, the pages, the app, the tests and the benchmarks.
LINT_PATHS := core datastore sim analytics matching strategies alerts reports webapp liftboard pages app.py tests bench

.PHONY: run test venv db-upgrade demo build lint imports bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# Each step of `make run` says in one line what it does (and how long it takes the first time); the
# commands themselves print their progress, a line per stage when the output is not a terminal.
# Migrate the state DB on purpose, before anything reads it: the other commands refuse an old schema.
db-upgrade: venv
	@echo "==> state DB: migrating it to this version's schema (liftboard db upgrade)"
	@$(BIN)/liftboard db upgrade

demo: db-upgrade
	@echo "==> data: generating the $(SCALE) marketplace into $(LIFTBOARD_HOME) unless it is there (demo: under a minute)"
	@$(BIN)/liftboard demo --scale $(SCALE) --if-missing

build: demo
	@echo "==> build: every table and model, unless the lake is unchanged since the last build (demo, 2 cores: about a minute the first time)"
	@$(BIN)/liftboard build --if-stale

run: build
	@echo "==> users: creating the demo logins ops/ops and merchant/merchant unless they exist"
	@$(BIN)/liftboard users seed-demo
	@echo "==> app: serving on http://127.0.0.1:$(PORT) (Ctrl-C stops it)"
	@$(BIN)/liftboard serve --port $(PORT)

# The whole suite on local lake folders, then the lake's own tests again on an S3-compatible server the
# tests start on 127.0.0.1 (moto; tests/objectstore.py): the same tests on a local path and an
# object-store URL (54 tests; 2m11s-2m44s on two cores shared with other work, load 7-13).
S3_TESTS := tests/datastore/test_lake.py tests/datastore/test_updates.py tests/datastore/test_ingest_failures.py

test: venv
	$(BIN)/python -m pytest -n 2 --dist loadfile --timeout 900
	LIFTBOARD_TEST_LAKE=s3 $(BIN)/python -m pytest -n 2 --timeout 900 $(S3_TESTS)

# Import contracts (layers, no streamlit below the app, independent siblings): pyproject [tool.importlinter].
imports: venv
	$(BIN)/lint-imports

lint: venv imports
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

bench: venv
	$(BIN)/python bench/bench_ingest.py --scale large

clean:
	rm -rf $(VENV) data .pytest_cache
