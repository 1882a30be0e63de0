# iotfin: `make demo` and `make test` each set up what they need; `make install` does the set-up alone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: install demo test lint bench clean

install: $(STAMP)

# Re-install only when the package metadata changes; the editable install picks up source edits.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "iotfin needs Python >= 3.11, found " + sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $(STAMP)

demo: install
	$(BIN)/iotfin demo $(ARGS)

# On every core: the suite is mostly waiting on real servers, browsers and subprocesses.
test: install
	$(BIN)/python -m pytest -n auto --dist loadgroup $(ARGS)

lint: install
	$(BIN)/ruff check src tests bench

bench: install
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/sim_generate.py --enterprises 10000 --devices 100000 --days 90 --workers 2

clean:
	rm -rf $(VENV) .iotfin .pytest_cache
