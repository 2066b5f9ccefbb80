# The two commands that do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/default
export JAX_PLATFORMS ?= cpu

.PHONY: run test test-full test-slow bench setup data pretrain ship quality clean

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
	$(PY) -m lopt_trainer.app.run_default --out $(RUN_DIR)

# CI's command: the fast suite (family batteries on 6 specs each; `make test-full` runs 20 plus the slow tests).
test: $(STAMP)
	TASKGEN_FAMILY_SPECS=$${TASKGEN_FAMILY_SPECS:-6} $(PY) -m pytest -q -n 2 --dist loadfile

test-full: $(STAMP)
	TASKGEN_FAMILY_SPECS=20 $(PY) -m pytest -q -n 2 --dist loadfile -m "slow or not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

# Continue pretraining: from the committed portable state lopt_trainer/data/pretrain_state/ when it is there (else
# from the hand-set θ), PRETRAIN_STEPS more outer steps or PRETRAIN_HOURS hours (0 = no limit), whichever ends
# first, in PRETRAIN_DIR (rerun after an interruption: a run folder at least as far as the state is continued);
# then export the state back (commit the directory to accumulate) and the panel-best θ as a candidate
# (PRETRAIN_DIR/candidate/; `make ship` puts it into the package only if `make quality` says it wins).
PRETRAIN_CONFIG ?= lopt_trainer/data/pretrain_config.json
PRETRAIN_DIR ?= runs/pretrain
PRETRAIN_STATE ?= lopt_trainer/data/pretrain_state
PRETRAIN_STEPS ?= 1000
PRETRAIN_HOURS ?= 0
pretrain: $(STAMP)
	start=$$($(PY) -c 'import sys; from lopt_trainer.meta.portable import main; sys.exit(main(sys.argv[1:]))' step $(PRETRAIN_STATE)) || exit 2; \
	from=$$(test -f $(PRETRAIN_STATE)/index.json && echo "--from-state $(PRETRAIN_STATE)"); \
	hours=$$($(PY) -c "import sys; h = float(sys.argv[1]); print(f'--hours {h}' if h > 0 else '')" "$(PRETRAIN_HOURS)") || exit 2; \
	$(VENV)/bin/taskgen lopt meta-train --config $(PRETRAIN_CONFIG) \
	  --steps $$((start + $(PRETRAIN_STEPS))) $$hours --out $(PRETRAIN_DIR) --resume $$from; rc=$$?; \
	test $$rc = 0 -o $$rc = 130 || exit $$rc; \
	$(VENV)/bin/taskgen lopt export-state $(PRETRAIN_DIR) --out $(PRETRAIN_STATE) && \
	mkdir -p $(PRETRAIN_DIR)/candidate && \
	$(PY) -c "from lopt_trainer.meta.export import export_run; print('candidate θ:', export_run('$(PRETRAIN_DIR)', '$(PRETRAIN_DIR)/candidate'))" && exit $$rc

# Ship the pretraining run's panel-best θ into the package, only if its quality results on two task draws meet the
# targets (one of them task by task against the hand-set θ's result), e.g.
#   make quality THETA=handset QUALITY_LABEL=quality_handset
#   make quality THETA=runs/pretrain/candidate/pretrained_theta.npz QUALITY_LABEL=candidate
#   python -m benchmarks.bench_quality --task-seed 1 --theta handset --label confirm1_handset --out runs/confirm1_handset
#   python -m benchmarks.bench_quality --task-seed 1 --theta runs/pretrain/candidate/pretrained_theta.npz \
#     --label confirm1_candidate --out runs/confirm1_candidate
#   make ship SHIP_CONFIRM="benchmarks/results/confirm1_candidate.json benchmarks/results/confirm1_handset.json"
# or a θ file with the JSON that says where it comes from (it becomes the shipped recipe):
#   make ship SHIP_SOURCE=mix.npz SHIP_PROVENANCE=mix_provenance.json SHIP_QUALITY=benchmarks/results/mix.json
SHIP_SOURCE ?= $(PRETRAIN_DIR)
SHIP_QUALITY ?= benchmarks/results/candidate.json
SHIP_HANDSET ?= benchmarks/results/quality_handset.json
SHIP_PROVENANCE ?=
SHIP_CONFIRM ?=
ship: $(STAMP)
	$(VENV)/bin/taskgen lopt ship $(SHIP_SOURCE) --quality $(SHIP_QUALITY) --handset $(SHIP_HANDSET) \
	  $(if $(SHIP_CONFIRM),--confirm $(SHIP_CONFIRM)) $(SHIP_PROVENANCE:%=--provenance %)

# The quality benchmark of the shipped θ on 40 tasks (half unseen), 2 seeds, 1000 steps: 22 minutes on 2 CPU
# cores the first time (AMD EPYC), 3 minutes per θ once the AdamLR baselines are in the cache. THETA=handset|random|FILE|RUN;
# QUALITY_AGAINST=RESULT.json (space-separated list): compare task by task with earlier results of other θ.
THETA ?= lopt_trainer/data/pretrained_theta.npz
QUALITY_LABEL ?= quality
QUALITY_AGAINST ?=
quality: $(STAMP)
	$(PY) -m benchmarks.bench_quality --theta $(THETA) --label $(QUALITY_LABEL) --out runs/$(QUALITY_LABEL) --resume \
	  $(QUALITY_AGAINST:%=--against %)

clean:
	rm -rf $(VENV) runs build *.egg-info
