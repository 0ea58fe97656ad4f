# Two commands do all the set-up: `make run` (the full protocol on the virtual lab)
# and `make test` (the whole test suite). Each creates or updates .venv itself.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

# Debian packages the archive and monitor-page tests need (issue 16): a real PostgreSQL
# server and headless Chromium with its driver.  Installed only when missing, and only
# where we are root with apt-get (CI); elsewhere those tests skip, saying why.
SYSTEM_PACKAGES = postgresql chromium chromium-driver

.PHONY: run test bench clean system-packages

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/labctl run protocol

test: $(STAMP) system-packages
	$(BIN)/python -m pytest -q

system-packages:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing from Debian's packages (archive and browser tests)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) \
	      || echo "warning: could not install$$missing; the tests that need them will skip, saying why"; \
	  else \
	    echo "note:$$missing not installed (needs root and apt-get); the tests that need them will skip"; \
	  fi; \
	fi

bench: $(STAMP)
	$(BIN)/labctl bench

clean:
	rm -rf $(VENV) build *.egg-info
