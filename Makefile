# Two commands do all set-up on a fresh clone:
#   make demo   -> creates .venv, installs avxai, runs the demo on the bundled model and utterance
#   make test   -> same set-up, then the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.avxai-installed
OUT    ?= avxai-out

.PHONY: demo test setup bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/avxai demo --out $(OUT)

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(OUT) .pytest_cache
