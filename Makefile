# Two commands: `make run` serves the portal, `make test` runs the whole suite. Both set up first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FLASK := $(BIN)/flask --app wsgi
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: setup run test demo clean

$(STAMP): pyproject.toml plugins/google/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' -e plugins/google
	touch $(STAMP)

setup: $(STAMP)
	$(FLASK) db upgrade
	$(FLASK) portal first-run

run: setup
	$(FLASK) run --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) instance
