# The two commands that do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/default
export JAX_PLATFORMS ?= cpu

.PHONY: run test test-slow bench setup data clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

data: $(STAMP)
	$(VENV)/bin/taskgen data fetch --all

# Set up, fetch the data, regenerate + check the suite, build and train a sample of tasks, meta-train briefly,
# evaluate, and write the report (see README).
run: $(STAMP)
	$(PY) -m lopt_trainer.run_default --out $(RUN_DIR)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadfile

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(VENV) runs build *.egg-info
