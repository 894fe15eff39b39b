# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEMO_DIR ?= demo-workspace
# PostgreSQL for the test suite (these machines run one on 127.0.0.1:5432, trust auth).
export LABELPILOT_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: demo test lint typecheck bench clean web reference

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	touch $@

# The browser UI: TypeScript, type-checked, bundled by esbuild into the Python package.
STATIC := src/labelpilot/server/static
web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	touch $@

$(STATIC)/app.js: web/node_modules/.installed $(wildcard web/src/*.ts)
	cd web && npx tsc --noEmit -p . && npm run -s build

web: $(STATIC)/app.js

# Chromium for the UI tests (Debian's package; Playwright drives it, nothing downloaded).
/usr/bin/chromium:
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-dejavu-core

$(VENV)/.installed-bench: $(VENV)/.installed
	$(PIP) install --quiet -e '.[dev,bench]'
	touch $@

# The reference the detector trainer's loss is checked against in the tests (YOLOX 0.3.0's
# source from PyPI, read by the tests, never imported by LabelPilot).
YOLOX_SDIST := https://files.pythonhosted.org/packages/f8/a1/08f57037146540133673aecca2c371064d567928beaebc69611e4c7745b0/yolox-0.3.0.tar.gz
$(VENV)/reference/yolox-0.3.0/yolox/models/yolo_head.py: | $(VENV)/.installed
	mkdir -p $(VENV)/reference
	curl -fsSL -o $(VENV)/reference/yolox.tar.gz $(YOLOX_SDIST)
	echo "1b8ee68846434408c40074f0806259fe3b9387181e562dbc435ea666533d8d08  $(VENV)/reference/yolox.tar.gz" | sha256sum -c --quiet
	tar -xzf $(VENV)/reference/yolox.tar.gz -C $(VENV)/reference
	touch $@

reference: $(VENV)/reference/yolox-0.3.0/yolox/models/yolo_head.py

# A real Label Studio for the ML-backend test, in a virtual environment of its own (it pins
# many packages LabelPilot's do not agree with); the test starts it on 127.0.0.1.
LS_VENV := .venv-ls
$(LS_VENV)/.installed:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install --quiet --upgrade pip
	$(LS_VENV)/bin/pip install --quiet --no-compile label-studio==1.23.2
	touch $@

demo: $(VENV)/.installed web
	$(VENV)/bin/labelpilot demo $(DEMO_DIR)
	$(VENV)/bin/labelpilot serve $(DEMO_DIR)

test: lint web reference /usr/bin/chromium $(LS_VENV)/.installed
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# ruff (PLC2701: no imports of another module's private names), mypy over the package,
# the tests and the benchmarks, and the layer contracts of pyproject.toml.
lint: $(VENV)/.installed
	$(PY) -m ruff check src tests benchmarks docs
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed-bench
	$(PY) benchmarks/coco_import_export.py

clean:
	rm -rf $(VENV) $(LS_VENV) $(DEMO_DIR) .pytest_cache
