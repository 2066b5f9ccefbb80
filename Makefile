# The two commands that do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_DIR ?= runs/default
# ACCEL=cuda12 installs JAX's CUDA 12 build (`make setup ACCEL=cuda12`); jobs then run where JAX finds a device.
# Only the tests force the CPU. Several processes on one GPU (Ray workers, the tests) need it not preallocated.
ACCEL ?= cpu
comma := ,
EXTRAS := dev$(if $(filter-out cpu,$(ACCEL)),$(comma)$(ACCEL))
STAMP := $(VENV)/.installed-$(ACCEL)
export XLA_PYTHON_CLIENT_PREALLOCATE ?= false

.PHONY: run test test-full test-slow bench setup data pretrain ship quality clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

setup: $(STAMP)

data: $(STAMP)
	$(VENV)/bin/taskgen data fetch --all

# Set up, fetch the data, regenerate + check the suite, build and train a sample of tasks, meta-train briefly,
# evaluate, and write the report (see README; the job lives in the lab, research/run_default.py).
run: $(STAMP)
	$(PY) -m research.run_default --out $(RUN_DIR)

# CI's command: the fast suite (family batteries on 6 specs each; `make test-full` runs 20 plus the slow tests).
test: $(STAMP)
	JAX_PLATFORMS=cpu TASKGEN_FAMILY_SPECS=$${TASKGEN_FAMILY_SPECS:-6} $(PY) -m pytest -q -n 2 --dist loadfile

test-full: $(STAMP)
	JAX_PLATFORMS=cpu TASKGEN_FAMILY_SPECS=20 $(PY) -m pytest -q -n 2 --dist loadfile -m "slow or not slow"

test-slow: $(STAMP)
	JAX_PLATFORMS=cpu $(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

# Continue pretraining: from the committed portable state lopt_trainer/data/pretrain_state/ when it is there (else
# from the hand-set θ), PRETRAIN_STEPS more outer steps or PRETRAIN_HOURS hours (0 = no limit), whichever ends
# first, in PRETRAIN_DIR (rerun after an interruption: a run folder at least as far as the state is continued);
# then export the state back (commit the directory to accumulate) and the panel-best θ as a candidate
# (PRETRAIN_DIR/candidate/; `make ship` puts it into the package only if it wins on the yardstick's test set).
PRETRAIN_CONFIG ?= lopt_trainer/data/pretrain_config.json
PRETRAIN_DIR ?= runs/pretrain
PRETRAIN_STATE ?= lopt_trainer/data/pretrain_state
PRETRAIN_STEPS ?= 1000
PRETRAIN_HOURS ?= 0
pretrain: $(STAMP)
	start=$$($(PY) -c 'import sys; from lopt_trainer.meta.portable import main; sys.exit(main(sys.argv[1:]))' step $(PRETRAIN_STATE)) || exit 2; \
	from=$$(test -f $(PRETRAIN_STATE)/index.json && echo "--from-state $(PRETRAIN_STATE)"); \
	hours=$$($(PY) -c "from lopt_trainer.meta.portable import pretrain_limits; pretrain_limits()" "$(PRETRAIN_STEPS)" "$(PRETRAIN_HOURS)") || exit 2; \
	$(VENV)/bin/taskgen lopt meta-train --config $(PRETRAIN_CONFIG) \
	  --steps $$((start + $(PRETRAIN_STEPS))) $$hours --out $(PRETRAIN_DIR) --resume --allow-change $$from; rc=$$?; \
	test $$rc = 0 -o $$rc = 130 || exit $$rc; \
	$(VENV)/bin/taskgen lopt export-state $(PRETRAIN_DIR) --out $(PRETRAIN_STATE) && \
	mkdir -p $(PRETRAIN_DIR)/candidate && \
	$(PY) -c "from research.export import export_run; print('candidate θ:', export_run('$(PRETRAIN_DIR)', '$(PRETRAIN_DIR)/candidate'))" && exit $$rc

# Ship the pretraining run's panel-best θ into the package, only if it wins on the yardstick's test set (ahead of
# the hand-set θ with the 95% interval above 0, beats Global AdamLR on >= 60% of the tasks and per-task AdamLR@14 on
# >= 25%, none diverged); the gate (research/ship.py) measures both θ itself (cached runs are reused) and leaves
# shipped_test.json:
#   make ship                                  (the candidate of PRETRAIN_DIR)
#   make ship SHIP_SOURCE=mix.npz SHIP_PROVENANCE=mix_provenance.json
SHIP_SOURCE ?= $(PRETRAIN_DIR)
SHIP_PROVENANCE ?=
ship: $(STAMP)
	$(PY) -m research ship $(SHIP_SOURCE) $(SHIP_PROVENANCE:%=--provenance %)

# The yardstick's claim: θ on the frozen test set (240 tasks of the 12 families, 3 seeds, 1000 steps) in the paper's
# normalized loss against the committed AdamLR baselines, with 95% intervals; QUALITY_AGAINST: θ names to compare
# with, paired task by task (e.g. QUALITY_AGAINST=handset). THETA=pretrained|handset|random|FILE|RUN. Results in
# runs/$(QUALITY_LABEL)/ (yardstick.json, per_task.csv, strip.png); θ runs are cached by digest, so a θ measured
# once costs nothing again. Choose θ on the valid set instead: `taskgen lopt eval --theta T --on valid`.
THETA ?= pretrained
QUALITY_LABEL ?= quality
QUALITY_AGAINST ?=
quality: $(STAMP)
	$(VENV)/bin/taskgen lopt eval --theta $(THETA) --on test --out runs/$(QUALITY_LABEL) \
	  $(QUALITY_AGAINST:%=--against %)

clean:
	rm -rf $(VENV) runs build *.egg-info
