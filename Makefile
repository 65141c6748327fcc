# Sibiao — the two commands a new user needs: `make demo` and `make test`.
# Both do all set-up on a fresh Debian/Ubuntu machine and are fast when re-run.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the test suite drives as real clients (GDAL's ogr2ogr/ogrinfo).
# PostgreSQL and PostGIS are installed by the platform itself (`sibiao db start`).
APT_PACKAGES ?= gdal-bin chromium fonts-wqy-microhei
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SIBIAO_DEMO_SCALE ?= 1

.PHONY: demo test lint setup system-deps db clean-db help

help:
	@echo "make demo   - set everything up and run the platform on http://127.0.0.1:8000"
	@echo "make test   - set everything up and run the whole test suite on a real PostGIS"
	@echo "make lint   - ruff and mypy"

setup: $(STAMP) system-deps

$(STAMP): pyproject.toml
	@if ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null; then \
	  echo "installing python3-venv"; $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

system-deps:
	@missing=""; for pkg in $(APT_PACKAGES); do \
	  dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

db: setup
	$(BIN)/sibiao db start
	$(BIN)/sibiao db upgrade

DISTRICT := .sibiao/district-$(SIBIAO_DEMO_SCALE)

# Generate the synthetic district once per scale, load it once per generation (a stamp
# records the manifest that was loaded), then serve.
$(DISTRICT)/manifest.json: | $(STAMP)
	$(BIN)/sibiao generate $(DISTRICT) --scale $(SIBIAO_DEMO_SCALE) --seed 0

$(DISTRICT)/.loaded: $(DISTRICT)/manifest.json | db
	$(BIN)/sibiao load $(DISTRICT)
	@touch $@

demo: db $(DISTRICT)/.loaded
	$(BIN)/sibiao users ensure-admin
	@echo ""
	@echo "Sibiao demo on http://127.0.0.1:8000"
	@echo "  API docs      http://127.0.0.1:8000/docs"
	@echo "  catalog       http://127.0.0.1:8000/catalog/layers"
	@echo "  upload a file http://127.0.0.1:8000/maps/upload"
	@echo "  psql          psql \"$$($(BIN)/sibiao db url)\""
	$(BIN)/sibiao serve --host 127.0.0.1 --port 8000

test: setup
	$(BIN)/sibiao db start
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean-db:
	-$(BIN)/sibiao db stop
	rm -rf .sibiao
