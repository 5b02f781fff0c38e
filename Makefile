# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, install, and run the demo on the embedded broker and Redis
#   make test   - create .venv, install, and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test install clean

$(BIN)/streamrec: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first: an unpinned torch would pull several GB of CUDA packages.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/streamrec

install: $(BIN)/streamrec

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/streamrec demo

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
