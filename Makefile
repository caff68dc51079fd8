# dcmseal developer tasks. `make demo` and `make test` are the two entry points; everything else is a step.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
VIEWER_DEPS := viewer/node_modules/.package-lock.json
VIEWER_STAMP := src/dcmseal/media/viewer/VIEWER/VIEWER.JS
VIEWER_SOURCES := $(wildcard viewer/src/*) viewer/build.mjs viewer/tsconfig.json

.PHONY: venv bytecode viewer demo system-deps lint test bench bench-media bench-scan clean distclean

# Internal: the virtualenv with the package (editable) and the test tools; reinstalled when pyproject.toml changes.
venv: $(STAMP) $(VIEWER_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[test]'
	touch $@

# The offline web viewer burned on every medium: `npm ci` when the lock file changed, then a build into
# src/dcmseal/media/viewer/ (package data) when a source changed; the built VIEWER.JS is the stamp.
viewer: $(VIEWER_STAMP)

$(VIEWER_DEPS): viewer/package.json viewer/package-lock.json
	cd viewer && npm ci --no-audit --no-fund
	touch $@

$(VIEWER_STAMP): $(VIEWER_DEPS) $(VIEWER_SOURCES)
	cd viewer && npm run build
	touch $@

demo: venv viewer
	$(BIN)/dcmseal demo

# Debian packages the interop tests talk to (openssl, GDCM, DCMTK, dicom3tools), installed only when missing.
system-deps:
	bash scripts/install-system-deps.sh

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	site=$$(mktemp -d) && $(BIN)/mkdocs build --strict --quiet --site-dir "$$site"; status=$$?; rm -rf "$$site"; exit $$status

test: venv viewer system-deps lint
	$(BIN)/pytest $(PYTEST_ARGS)

# Byte-compiled modules, as a wheel install has them: an editable install compiles on first import only, and
# not at all where PYTHONDONTWRITEBYTECODE is set, which would add ~0.15 s to every command a benchmark times.
bytecode: venv
	$(BIN)/python -m compileall -q src >/dev/null

bench: venv system-deps bytecode
	$(BIN)/python bench/bench_cms.py

bench-media: venv system-deps bytecode
	$(BIN)/python bench/bench_media.py

# dcmseal scan against a raw read of the same files and pydicom, warm and cold (a few minutes).
bench-scan: venv bytecode
	$(BIN)/python bench/bench_scan.py

clean:
	rm -rf build dist src/*.egg-info *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
	rm -rf viewer/dist viewer/test-dist src/dcmseal/media/viewer
	find src tests bench -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) viewer/node_modules
