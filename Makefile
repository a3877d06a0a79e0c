# Liftboard: `make run` sets up, generates the demo marketplace, builds and serves; `make test` sets up and tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export LIFTBOARD_HOME ?= $(CURDIR)/data
SCALE  ?= demo
PORT   ?= 8501

.PHONY: run test venv demo build lint bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

demo: venv
	$(BIN)/liftboard demo --scale $(SCALE) --if-missing

build: demo
	$(BIN)/liftboard build --if-stale

run: build
	$(BIN)/liftboard users seed-demo
	$(BIN)/liftboard serve --port $(PORT)

test: venv
	$(BIN)/python -m pytest -n 2 --dist loadfile --timeout 900

lint: venv
	$(BIN)/ruff check analytics strategies reports liftboard tests pages bench app.py
	$(BIN)/mypy

bench: venv
	$(BIN)/python bench/bench_ingest.py --scale large

clean:
	rm -rf $(VENV) data .pytest_cache
