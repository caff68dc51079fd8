# dcmseal developer tasks. `make demo` and `make test` are the two entry points; everything else is a step.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv demo system-deps lint test bench bench-media clean distclean

# Internal: the virtualenv with the package (editable) and the test tools; reinstalled when pyproject.toml changes.
venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

demo: venv
	$(BIN)/dcmseal demo

# Debian packages the interop tests talk to (openssl, GDCM, DCMTK, dicom3tools), installed only when missing.
system-deps:
	bash scripts/install-system-deps.sh

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: venv system-deps lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: venv system-deps
	$(BIN)/python bench/bench_cms.py

bench-media: venv system-deps
	$(BIN)/python bench/bench_media.py

clean:
	rm -rf build dist src/*.egg-info *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find src tests bench -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
