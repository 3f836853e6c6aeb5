# Two commands do all set-up on a fresh machine:
#   make app    create .venv if missing, install, launch the app on the built-in digits
#   make test   the same .venv plus test tools (and Debian's chromium), then ruff, mypy and the whole suite
# The inner loop while editing:
#   make test-fast  ruff, mypy and the tests not marked slow or browser (see pyproject.toml's markers)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
PORT ?= 8501

RUFF := $(PY) -m ruff check cvdemo pages tests streamlit_app.py
MYPY := $(PY) -m mypy
FAST := not slow and not browser

.PHONY: app test test-fast install install-test chromium lint typecheck bench gpu-check

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-dev

# Browser tests drive Debian's chromium; Playwright cannot download its own browser offline.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

app: install
	$(VENV)/bin/streamlit run streamlit_app.py --server.port $(PORT)

lint: install-test
	$(RUFF)

# Settings in pyproject.toml ([tool.mypy]): files = cvdemo.
typecheck: install-test
	$(MYPY)

test: install-test chromium
	$(RUFF)
	$(MYPY)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: install-test
	$(RUFF)
	$(MYPY)
	$(PY) -m pytest -m "$(FAST)" $(PYTEST_ARGS)

# Every GPU-only path once, on a CUDA GPU (about 5-8 minutes): one JSON line per check and a summary;
# exits non-zero when a check fails, and at once, with one sentence, on a machine without CUDA.
gpu-check: install
	$(PY) -m cvdemo.bench.gpu_check
