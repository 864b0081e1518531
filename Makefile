# Two commands do all the set-up: `make demo` and `make test`. Each creates .venv when missing and installs
# with pip; torch is pinned by constraints.txt (the CPU wheel). A stamp file makes a second install a no-op
# until pyproject.toml or constraints.txt change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
PIP_FLAGS := --disable-pip-version-check --progress-bar off -c constraints.txt
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck pytest install install-dev wheel-check bench clean engines engines-up engines-down

# Real Elasticsearch / OpenSearch nodes for tests/live, from Maven Central only (docker/nodes/pom.xml): the jars
# and zips go into the ignored .engines/; tests/live/nodes.py lays them out, starts and stops them.
ENGINES_DIR := .engines
ENGINES_STAMP := $(ENGINES_DIR)/.fetched
NODE_POMS := $(wildcard docker/nodes/pom.xml docker/nodes/*/pom.xml)
MVN ?= mvn

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install $(PIP_FLAGS) -q -e '.[offline-models]'
	touch $@

$(DEV_STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) install $(PIP_FLAGS) -q -e '.[dev]'
	touch $(RUNTIME_STAMP) $@

install: $(RUNTIME_STAMP)
install-dev: $(DEV_STAMP)

demo: $(RUNTIME_STAMP)
	$(BIN)/spladebridge demo

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy cannot follow the package-dir mapping (encoder/ -> spladebridge.encoder) through an editable install,
# so it checks a tree of links laid out as the installed package is.
typecheck: $(DEV_STAMP)
	@rm -rf build/typecheck && mkdir -p build/typecheck/spladebridge
	@for f in spladebridge/*; do ln -s "$(CURDIR)/$$f" build/typecheck/spladebridge/; done
	@for d in encoder connectors hybrid; do ln -s "$(CURDIR)/$$d" build/typecheck/spladebridge/$$d; done
	cd build/typecheck && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml spladebridge

$(ENGINES_STAMP): $(NODE_POMS) tests/live/nodes.py
	$(MVN) -q -B --no-transfer-progress -f docker/nodes/pom.xml package -Dengines.dir=$(CURDIR)/$(ENGINES_DIR)
	$(PYTHON) tests/live/nodes.py prepare
	touch $@

engines: $(ENGINES_STAMP)

# Starts every node `make test` uses and prints `NAME URL` for each; a later pytest run reuses them.
engines-up: $(ENGINES_STAMP)
	@$(PYTHON) tests/live/nodes.py up

engines-down:
	@$(PYTHON) tests/live/nodes.py down

pytest: $(DEV_STAMP) $(ENGINES_STAMP)
	$(BIN)/python -m pytest

test: lint typecheck pytest

wheel-check: $(DEV_STAMP)
	$(BIN)/python -m pytest tests/unit/test_packaging.py

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
