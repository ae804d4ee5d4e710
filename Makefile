# Two commands do all set-up: `make demo` and `make test`. Both create .venv if missing and are
# no-ops for the install step once .venv is up to date with pyproject.toml and the constraints.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.emoclip-installed
PROFILE ?= synthetic
RUN_DIR ?= runs/demo
SEED ?= 0

.PHONY: install demo test test-lib test-notebooks test-ui lab bench gpu-smoke clean-venv

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned, so that pip takes the CPU build on CPU machines instead of CUDA wheels
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c requirements/constraints.txt -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name emoclip --display-name "Python (emoclip)" >/dev/null
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/emoclip reproduce --profile $(PROFILE) --out $(RUN_DIR) -p seed $(SEED)

test: test-lib test-notebooks

test-lib: install
	$(PY) -m pytest -q tests

test-notebooks: install
	$(PY) -m pytest -q --nbval-lax --nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks

# The clip explorer in a real browser (tests/ui, marker `ui`; about 3 minutes): a tiny synthetic run, notebook 04
# in JupyterLab, headless Chromium; screenshots to runs/ui-shots/ (EMOCLIP_UI_SHOTS=docs for the README's). Installs Debian's
# chromium and chromium-driver when missing (apt-get, as root, as in CI).
test-ui: install
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		apt-get update -q && apt-get install -y chromium chromium-driver; fi
	$(PY) -m pytest -q -m ui tests/ui

bench: install
	$(PY) benchmarks/run_benchmarks.py --threads 1

# On a machine with a GPU: the synthetic profile on CUDA with the tiny backbone, then the CUDA benchmarks.
gpu-smoke: install
	$(PY) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu-smoke needs a CUDA GPU')"
	$(VENV)/bin/emoclip reproduce --profile synthetic --out runs/gpu-smoke --force -p device cuda -p amp true
	$(PY) benchmarks/run_benchmarks.py --sections 5 --device cuda

lab: install
	$(VENV)/bin/jupyter lab notebooks

clean-venv:
	rm -rf $(VENV)
