# The two commands of the README: `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
export BQ_REST_PORT ?= 9050
export BQ_GRPC_PORT ?= 9060
export BIGQUERY_PROJECT ?= local-project
export BIGQUERY_EMULATOR_HOST ?= http://127.0.0.1:$(BQ_REST_PORT)
# Task workers `make run` starts (`make run WORKERS=2`: a split first load runs its key ranges two at a time).
WORKERS ?= 1

.PHONY: run test bench lint venv deps dev-deps emulator-offline services setup-run

$(PY):
	"$$(scripts/python312.sh)" -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.deps: requirements.txt | $(PY)
	$(PIP) install -q -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements-dev.txt requirements.txt | $(PY)
	$(PIP) install -q -r requirements-dev.txt
	touch $@ $(VENV)/.deps

# bqemulator runs `INSTALL spatial` at start-up; install the extension from its PyPI wheel
# so the emulator starts without internet.
$(VENV)/.emulator-offline: $(VENV)/.deps
	$(PY) -c "from duckdb_extensions import import_extension; import_extension('spatial')"
	touch $@

venv: $(PY)
deps: $(VENV)/.deps $(VENV)/.emulator-offline
dev-deps: $(VENV)/.dev-deps $(VENV)/.emulator-offline

# .data holds the SQLite database, secrets, the demo database, spool files and the emulator's data:
# owner-only (umask 077 for everything started here, including the emulator; settings.py does the
# same for every Django process), and a .data left by an older version is tightened.
setup-run: deps
	umask 077 && mkdir -p .data && chmod -R go-rwx .data
	umask 077 && $(PY) manage.py migrate --noinput
	umask 077 && $(PY) manage.py collectstatic --noinput -v0
	umask 077 && $(PY) manage.py seed_demo

## make run: set everything up and start web (127.0.0.1:8000), worker, scheduler and the BigQuery emulator.
run: setup-run
	umask 077 && mkdir -p .data/bigquery
	umask 077 && ETL_TASK_WORKERS=$${ETL_TASK_WORKERS:-$(WORKERS)} exec $(VENV)/bin/honcho start -f Procfile -c worker=$(WORKERS)

services:
	scripts/ensure-services.sh

## make test: set everything up (venv, Chromium, PostgreSQL/MariaDB) and run every test.
test: dev-deps services
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: dev-deps services
	$(PY) bench/run.py

lint: dev-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## make test-differential: the compatibility report against real loads (the CI share: one derandomized example per pair).
## make test-differential-long: ETL_DIFFERENTIAL_EXAMPLES (default 25) fresh random examples per pair, then the counts.
.PHONY: test-differential test-differential-long
test-differential: dev-deps services
	$(VENV)/bin/pytest tests/etl/test_differential.py -q $(PYTEST_ARGS)

test-differential-long: dev-deps services
	umask 077 && mkdir -p .data && rm -f .data/differential.jsonl
	ETL_DIFFERENTIAL_EXAMPLES=$${ETL_DIFFERENTIAL_EXAMPLES:-25} ETL_DIFFERENTIAL_REPORT=.data/differential.jsonl \
		$(VENV)/bin/pytest tests/etl/test_differential.py -q $(PYTEST_ARGS); status=$$?; \
		$(PY) -m tests.etl.differential_summary .data/differential.jsonl; exit $$status
