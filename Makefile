# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, install, and run the demo on the embedded broker and Redis
#   make test   - create .venv, install, lint (ruff), type-check (mypy) and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test install system-deps clean

# Debian packages the tests use: Prometheus (promtool and a real server), headless
# Chromium with its WebDriver, and a Redis built with TLS (redis-tools: the server binary
# without a system service) with openssl for its test certificate. Installed only when a
# tool is missing.
DEBIAN_PACKAGES := prometheus chromium chromium-driver redis-tools openssl
DEBIAN_TOOLS    := promtool prometheus chromium chromedriver redis-check-rdb openssl

$(BIN)/streamrec: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch first: an unpinned torch would pull several GB of CUDA packages.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/streamrec

install: $(BIN)/streamrec

system-deps:
	@missing=""; for tool in $(DEBIAN_TOOLS); do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for the tests ($$missing missing): $(DEBIAN_PACKAGES)"; \
	  if ! command -v apt-get >/dev/null 2>&1; then \
	    echo "error:$$missing not found and this is not a Debian/Ubuntu system: install Prometheus (with promtool)," \
	         "Chromium and chromedriver, a Redis server with TLS, and openssl, and put them on PATH" >&2; exit 1; fi; \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	  else echo "error:$$missing not found and no root or password-less sudo to install them; run:" \
	            "sudo apt-get install -y --no-install-recommends $(DEBIAN_PACKAGES)" >&2; exit 1; fi; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEBIAN_PACKAGES) \
	    || { echo "error: apt-get could not install $(DEBIAN_PACKAGES) (see above)" >&2; exit 1; }; \
	fi

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/streamrec demo

test: install system-deps
	$(BIN)/ruff check .
	$(BIN)/mypy
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache
