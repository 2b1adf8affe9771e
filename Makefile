# Two commands on a fresh machine: `make run` serves Gatehouse, `make test` runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Dependencies, including lxml and xmlsec as the wheel pair that shares one libxml2
# (building lxml from source links another libxml2 and python3-saml then fails to load).
PIP_INSTALL := $(BIN)/pip install --only-binary=lxml,xmlsec

.PHONY: run test lint install bench

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(PIP_INSTALL) --quiet -e ".[test]"
	touch $@

run: $(STAMP)
	GATEHOUSE_ENV=$${GATEHOUSE_ENV:-development} $(BIN)/gatehouse db upgrade
	GATEHOUSE_ENV=$${GATEHOUSE_ENV:-development} $(BIN)/gatehouse bootstrap
	GATEHOUSE_ENV=$${GATEHOUSE_ENV:-development} $(BIN)/gunicorn --config gunicorn.conf.py wsgi:app

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(PIP_INSTALL) --quiet -e ".[test,bench]"
	$(BIN)/python -m bench.run
