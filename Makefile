# The two commands of the README: `make demo` and `make test`. Both set everything up first.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup system-packages demo serve test lint check clean

NODE_STAMP := web/node_modules/.package-lock.json

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml
	scripts/make-venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(NODE_STAMP): web/package.json web/package-lock.json
	scripts/ensure-system-packages node
	cd web && npm ci --no-audit --no-fund --silent

system-packages:
	scripts/ensure-system-packages

demo: setup
	$(BIN)/claimcam demo

serve: setup
	$(BIN)/claimcam serve

test: setup system-packages
	scripts/run-tests

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

check: lint test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
