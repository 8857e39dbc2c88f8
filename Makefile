# ExoDrive backend. Every target sets itself up: a Python virtualenv in .venv and buf from npm.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUF := node_modules/.bin/buf

.PHONY: setup run test check lint typecheck proto-lint generate check-generated bench clean

setup: $(STAMP) $(BUF)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(BUF): package.json
	npm install --no-audit --no-fund --silent
	touch $(BUF)

## run: serve gRPC and the HTTP gateway (zero-config: embedded PostgreSQL and Redis)
run: setup
	$(BIN)/exodrive serve

## test: the whole suite against real PostgreSQL and Redis, with coverage
test: setup
	PATH="$(CURDIR)/node_modules/.bin:$$PATH" $(BIN)/pytest --cov --cov-report=term $(PYTEST_ARGS)

## check: lint, types, contract lint and format, generated code freshness
check: lint typecheck proto-lint check-generated

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

proto-lint: setup
	$(BUF) lint
	$(BUF) format --diff --exit-code

## generate: regenerate generated/ from proto/
generate: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python scripts/generate_protos.py

check-generated: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python scripts/generate_protos.py --check

## bench: benchmarks, printed as a table with ratios
bench: setup
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules .exodrive .coverage .coverage.* .pytest_cache .mypy_cache .ruff_cache
