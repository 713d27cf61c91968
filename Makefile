# wsmon — `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: setup setup-run system-deps run test lint bench clean

# What running needs: wsmon and its dependencies.
$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

# What developing needs on top: test, lint and build tools.
$(DEV_STAMP): $(RUN_STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup-run: $(RUN_STAMP)
setup: $(DEV_STAMP)

system-deps:  ## Debian packages the tests use for real (installed when root)
	scripts/install-system-deps

run: setup-run  ## serve /probe, /metrics and the bundled targets.toml on :9095
	$(BIN)/wsmon serve --config targets.toml

lint: setup
	$(BIN)/hadolint Dockerfile
	$(BIN)/ruff check wsmon tests bench
	$(BIN)/ruff format --check wsmon tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup system-deps lint
	$(BIN)/pytest -q

bench: setup  ## CPU per probe vs Go, /probe latency, 10,000 persistent targets, scrapes, shards, dashboard (see bench/README.md)
	$(BIN)/python bench/probe_cpu.py
	$(BIN)/python bench/probe_http.py
	$(BIN)/python bench/persistent_load.py
	$(BIN)/python bench/render_cpu.py
	cd bench && ../$(BIN)/python shards.py
	$(BIN)/python bench/dashboard_api.py --chromium

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache bench/bin bench/results
