# Two commands do all the set-up on a fresh machine:
#   make run    create .venv, install optirec, start the service
#   make test   create .venv, install optirec with its test tools, run ruff, mypy and the whole test suite
# torch is pinned (constraints.txt) and installed before anything that depends on it.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)

.PHONY: run test lint typecheck pytest bench wheel clean openapi system-deps

# Debian packages some tests use: chromium (tests/service/test_browser.py, driven by Playwright) and
# docker-compose (`docker-compose config -q` of tests/service/test_compose.py). Installed only when
# missing and when running as root; otherwise a note, and those tests skip with their reason.
SYSTEM_DEPS := chromium docker-compose
SYSTEM_LOG  ?= /tmp/optirec-system-deps.log

$(STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	$(BIN)/optirec serve --host $(HOST) --port $(PORT)

test: system-deps $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

system-deps:
	@missing=""; \
	for cmd in $(SYSTEM_DEPS); do command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$cmd"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian packages:$$missing (log: $(SYSTEM_LOG))"; \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; } >$(SYSTEM_LOG) 2>&1 \
			|| echo "note: apt-get install$$missing failed (see $(SYSTEM_LOG)); the tests that need them skip"; \
	else \
		echo "note: missing$$missing; as root: apt-get install -y$$missing (the tests that need them skip)"; \
	fi

openapi: $(STAMP)  ## regenerate openapi.yaml from the app (a test fails when they drift)
	$(BIN)/optirec openapi --output openapi.yaml

bench: $(STAMP)
	$(BIN)/python bench/engine.py

wheel: $(STAMP)
	$(BIN)/python -m build --wheel --outdir dist .

clean:
	rm -rf $(VENV) dist build .mypy_cache .ruff_cache .pytest_cache
