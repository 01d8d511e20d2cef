# Tracemark — the commands that set up everything on a fresh machine:
#   make serve   local backend on moto (creates .venv, installs, prints URL and admin token)
#   make demo    (with `make serve` running in another terminal) the five-minute tour
#   make test    the whole suite (installs Debian's chromium for the browser tests)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
SERVE_ARGS ?=
DEMO_ARGS ?=

.PHONY: serve test install chromium lint typecheck pytest requirements check-requirements bench demo clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (Lambda runtime python3.11)"'
	$(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt -e '.[server,dev]'
	@touch $(STAMP)

install: $(STAMP)

# Debian's chromium drives the dashboard's browser tests (Playwright never downloads a browser).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

serve: install
	$(BIN)/tracemark serve $(SERVE_ARGS)

# The five-minute tour against the `make serve` running in another terminal (found through
# .tracemark-data/serve.json): sample repo, a real Claude Code session replayed through the hooks,
# commit, push, a PR on serve's fake GitHub; prints the comment, the check run and the dashboard URL.
demo: install
	@$(BIN)/tracemark demo $(DEMO_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy cli/tracemark layers/common/tracemark_common local/tracemark_local functions

check-requirements: install
	$(BIN)/python .ci/gen_requirements.py --check

pytest: install chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck check-requirements pytest

# Regenerate the Lambda layer's requirements.txt from constraints.txt (run after changing pins).
requirements: install
	$(BIN)/python .ci/gen_requirements.py

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .aws-sam
