# ColonSim: `make demo` and `make test` each do all set-up on a fresh Debian machine
# (Python 3.11, no GPU) and are fast when everything is already in place.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.colonsim-installed
GL_PACKAGES := libosmesa6 libegl1 libegl-mesa0 libgl1-mesa-dri libglu1-mesa
# Only for the interactive tuner's end-to-end browser test.
BROWSER_PACKAGES := chromium chromium-driver
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: setup sysdeps browser demo test test-fast lint bench clean

setup: sysdeps $(STAMP)

# Headless OpenGL: Mesa's EGL (llvmpipe) and OSMesa. Installed only when missing.
sysdeps:
	@if ldconfig -p | grep -q 'libOSMesa.so' && ldconfig -p | grep -q 'libEGL_mesa.so'; then \
	    echo "system GL libraries: present"; \
	else \
	    echo "installing system GL libraries: $(GL_PACKAGES)"; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(GL_PACKAGES); \
	fi

browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
	    echo "headless browser: present"; \
	else \
	    echo "installing a headless browser for the tuner test: $(BROWSER_PACKAGES)"; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(BROWSER_PACKAGES); \
	fi

# The CPU build of torch goes in first, so that the package's `torch` requirement
# is already satisfied and pip never pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	@$(PY) -m pip install -q -e '.[test,ray]'
	@touch $(STAMP)

demo: setup
	$(VENV)/bin/colonsim demo --quick --out runs/demo

# pytest exits 5 when it collected no tests: that is a failure here, not a pass.
test: setup browser
	@set +e; $(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

# The tests not marked slow, in two processes (pytest-xdist): under two minutes on two cores.
test-fast: setup
	@set +e; $(PY) -m pytest -q -m "not slow" -n 2 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

# pyflakes, import order, no print() in library code, no breakpoint() (pyproject.toml [tool.ruff]).
lint: setup
	$(VENV)/bin/ruff check .

bench: setup
	$(PY) benchmarks/render_throughput.py

clean:
	rm -rf $(VENV) runs *.egg-info
