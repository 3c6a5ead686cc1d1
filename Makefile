# spasemsr — two commands from a fresh clone:  make install demo   then   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_TRAIN_STEPS ?= 0
ABLATE ?= ablation
ABLATE_BUDGET ?= full
ABLATE_OUT ?= experiments/results
ABLATE_RUNS ?= runs/$(ABLATE)
# ablation runs at once (worker processes); the probe is a CPU study: 2 jobs on 2 cores
ABLATE_JOBS ?= $(if $(filter probe,$(ABLATE)),2,1)
SWEEP_STORAGE ?= sqlite:///runs/sweeps/optuna.db
SWEEP_STUDY ?= pd_sweep
SWEEP_TRIALS ?= 24
FIGURES_OUT ?= figures
STUDY ?= photo
BENCH_ALL ?=
GPU_CHECK_RESULTS ?= benchmarks/results
export HF_HUB_OFFLINE := 1

.PHONY: help install demo test test-fast gpu-check lint weights-tiny eval ablate sweep figure-data figures bench dashboard tensorboard clean

help:  ## list the targets with what each does
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  \1\t\2/' | expand -t 16

install: $(STAMP)  ## create .venv with the pinned requirements and spasemsr (editable)

$(STAMP): requirements.txt requirements-nodeps.txt setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

demo: install  ## shipped tiny SpaSemSR vs bicubic on held-out kodak5 (DEMO_TRAIN_STEPS=N retrains the chain first)
	$(BIN)/python -m spasemsr.demo --root runs/demo --train-steps $(DEMO_TRAIN_STEPS)

test: export OMP_WAIT_POLICY := PASSIVE
test: install  ## lint + the whole test suite (offline, CPU), 2 workers; prints the slowest tests
	$(BIN)/ruff check spasemsr tests benchmarks
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

test-fast: export OMP_WAIT_POLICY := PASSIVE
test-fast: install  ## lint + the suite without the tests marked slow (DDP runs, notebooks, smoke ablation), 2 workers
	$(BIN)/ruff check spasemsr tests benchmarks
	$(BIN)/python -m pytest -q -m "not slow" -n 2 --dist loadfile

gpu-check: install  ## on a GPU machine: CUDA tests, tiny training, SD-2 sample, upscale, CUDA benchmarks -> JSON
	$(BIN)/python -m benchmarks.gpu_check --results $(GPU_CHECK_RESULTS)

lint: install  ## ruff only
	$(BIN)/ruff check spasemsr tests benchmarks

weights-tiny: install  ## train every tiny component in order (resumable) and ship them to weights/tiny/
	$(BIN)/python -m spasemsr.weights.build_tiny

eval: install  ## kodak5 table (bicubic, DRM, Real-ESRGAN x4plus, RealSR, ControlNet-SR, SpaSemSR; both LR recipes) -> experiments/results; EVAL_ONLY=a,b re-runs just those rows; EVAL_SETS=kodak5,unseen; EVAL_LR=realesrgan; EVAL_SEEDS=0,1,2
	$(BIN)/python -m spasemsr.evaluation.suite --out experiments/results $(if $(EVAL_STEPS),--steps $(EVAL_STEPS)) \
		$(if $(EVAL_RESCORE),--rescore) $(if $(EVAL_ONLY),--only $(EVAL_ONLY)) $(if $(EVAL_SETS),--sets $(EVAL_SETS)) \
		$(if $(EVAL_LR),--lr $(EVAL_LR)) $(if $(EVAL_SEEDS),--seeds $(EVAL_SEEDS))

ablate: install  ## ablation table (experiments/$(ABLATE).yaml; ABLATE=probe: the guidance probe); ABLATE_BUDGET=smoke|full
	$(BIN)/spasemsr ablate --experiment experiments/$(ABLATE).yaml --budget $(ABLATE_BUDGET) --out $(ABLATE_OUT) \
		--runs $(ABLATE_RUNS) --jobs $(ABLATE_JOBS)

sweep: install  ## PD sweep of the shipped SpaSemSR (experiments/pd_sweep.yaml), then its front + upscale presets
	$(BIN)/spasemsr sweep --storage $(SWEEP_STORAGE) --study $(SWEEP_STUDY) --n-trials $(SWEEP_TRIALS)
	$(BIN)/spasemsr sweep --storage $(SWEEP_STORAGE) --study $(SWEEP_STUDY) --export

figure-data: install  ## every sweep trial + the figures' crops and re-scored baselines (shipped models, ~20 min CPU) -> experiments/results (STUDY=probe: the probe's trials + knob grid)
	$(BIN)/spasemsr figures --collect --study $(STUDY) --from experiments/results

figures: install  ## paper figures (PDF + PNG) and LaTeX tables from experiments/results alone -> $(FIGURES_OUT) (STUDY=probe: the guidance probe, -> $(FIGURES_OUT)/probe)
	$(BIN)/spasemsr figures --study $(STUDY) --from experiments/results --out $(FIGURES_OUT)

bench: export OMP_WAIT_POLICY := PASSIVE
bench: install  ## speed + memory figures -> benchmarks/results (~7-10 min, 2 CPU cores); BENCH_ALL=1 adds SD-2 at 512^2, upscale memory and stages, training memory, samplers (~50 min more)
	$(BIN)/python -m benchmarks.component_cost
	$(BIN)/python -m benchmarks.guidance_overhead
	$(BIN)/python -m benchmarks.training_throughput
	$(BIN)/python -m benchmarks.sweep_throughput
	if [ -n "$(BENCH_ALL)" ]; then \
		$(BIN)/python -m benchmarks.guidance_overhead --cases sd2 --sd2-lr 128 --repeats 3 --profile \
			--out benchmarks/results/guidance_overhead_sd2_512.json && \
		$(BIN)/python -m benchmarks.component_cost --profiles sd2 --sd2-lr 128 --owlv2 --repeats 1 \
			--out benchmarks/results/component_cost_sd2_512.json && \
		$(BIN)/python -m benchmarks.upscale_memory && \
		$(BIN)/python -m benchmarks.training_memory --step-cases gc gc+bf16+frozen_bf16 --step-batches 1 2 && \
		$(BIN)/python -m benchmarks.upscale_stages && \
		$(BIN)/python -m benchmarks.samplers; fi

dashboard: install  ## optuna-dashboard on the sweep storage (http://127.0.0.1:8080)
	$(BIN)/optuna-dashboard $(SWEEP_STORAGE) --host 127.0.0.1 --port 8080

tensorboard: install  ## TensorBoard on runs/ (http://127.0.0.1:6006)
	$(BIN)/tensorboard --logdir runs --host 127.0.0.1

clean:  ## remove runs/ and the tool caches
	rm -rf runs .pytest_cache .ruff_cache
