# Sibiao — the two commands a new user needs: `make demo` and `make test`.
# Both do all set-up on a fresh Debian/Ubuntu machine and are fast when re-run.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the test suite drives as real clients (GDAL's ogr2ogr/ogrinfo).
# PostgreSQL and PostGIS are installed by the platform itself (`sibiao db start`).
APT_PACKAGES ?= gdal-bin
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

demo: db
	@echo "Sibiao demo: http://127.0.0.1:8000  (API docs /docs, catalog /catalog/layers)"
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
