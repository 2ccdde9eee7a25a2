# The two commands that do everything on a fresh clone: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench lint format migrate client clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -qq -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -qq -r requirements-dev.txt
	touch $(VENV)/.runtime $@

## run: the whole stack in the foreground (API, worker, beat, Flower, simulator); Ctrl-C stops it
run: $(VENV)/.runtime
	scripts/run

## test: lint, import layers and the whole test suite against real Redis and a real database
test: $(VENV)/.dev
	scripts/test

## bench: the benchmark (docs/BENCHMARKS.md); QUICK=1 for about a minute, SOAK=1 adds the 20-minute soak, BENCH_BROKER=amqp on RabbitMQ, PUBLISH=1 writes it into docs/BENCHMARKS.md (NOTE="...")
## FORECAST=1: the forecasting run instead (5,000 SKUs x 5 centres x 365 days; FORECAST_SKUS=N for fewer)
bench: $(VENV)/.runtime
	$(BIN)/python -m bench $(if $(QUICK),--quick) $(if $(SOAK),--soak) $(if $(BENCH_BROKER),--broker $(BENCH_BROKER)) \
		$(if $(PUBLISH),--publish) $(if $(NOTE),--note "$(NOTE)") \
		$(if $(FORECAST),--forecast) $(if $(FORECAST_SKUS),--forecast-skus $(FORECAST_SKUS))

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(VENV)/.runtime
	$(BIN)/python manage.py migrate

## client: a typed Python client (package cot_client) from the API schema into clients/python/
client: $(VENV)/.dev
	$(BIN)/python manage.py spectacular --format openapi-json --validate --fail-on-warn \
		--file clients/openapi.json
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/openapi-python-client generate --overwrite --meta setup \
		--path clients/openapi.json --config clients/openapi-python-client.yaml \
		--output-path clients/python

clean:
	rm -rf $(VENV) .run staticfiles db.sqlite3* test_db.sqlite3* clients/python clients/openapi.json
