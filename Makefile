# The two commands of the quick start: `make run` and `make test`. Both set up .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test test-fast lint bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed  ## the hub on the embedded default: SQLite in ./var, in-process bus, http://127.0.0.1:8080
	$(VENV)/bin/hub run

test: $(VENV)/.installed  ## the whole suite, slow crash tests included (needs PostgreSQL and RabbitMQ on 127.0.0.1)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.installed  ## everything but the slow stress tests
	$(VENV)/bin/pytest -m "not slow" $(PYTEST_ARGS)

bench: $(VENV)/.installed
	$(PY) bench/throughput.py
