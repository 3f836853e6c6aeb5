# Two commands do all set-up on a fresh machine:
#   make app    create .venv if missing, install, launch the app on the built-in digits
#   make test   the same .venv plus test tools (and Debian's chromium), then the whole suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
PORT ?= 8501

.PHONY: app test install install-test chromium lint bench

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

test: install-test chromium
	$(PY) -m ruff check cvdemo pages tests streamlit_app.py
	$(PY) -m pytest $(PYTEST_ARGS)
