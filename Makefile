VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench validate clean refresh-catalog

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/polyfleet plan examples/frontier-lab.yaml --explain

test: install
	$(VENV)/bin/ruff check src tests bench
	$(PY) -m pytest

bench: install
	$(PY) bench/plan_scale.py

# The performance model against published results (docs/perf-validation.md): offline
# throughput (TensorRT-LLM, Gaudi, MI300X; fit vs held out, leave-one-out), MLPerf
# Inference Offline/Server/Interactive (all held out), batch-1 latency, training MFU.
validate: install
	$(PY) bench/perf_validation.py --leave-one-out
	$(PY) bench/mlperf_validation.py
	$(PY) bench/mlperf_validation.py --measurements examples/published_mlperf_v5.0.csv
	$(PY) bench/mlperf_validation.py --measurements examples/published_mlperf_v6.0.csv
	$(PY) bench/latency_validation.py
	$(PY) bench/training_validation.py

# Refresh the bundled catalog from local copies (nothing downloads): SkyPilot offers, then
# genai-prices api offers. Each step prints its diff; review `git diff src/polyfleet/catalog/data`.
SHARED ?= ../shared/data
refresh-catalog: install
	$(VENV)/bin/polyfleet catalog import-skypilot $(SHARED)/skypilot-catalog --write
	$(VENV)/bin/polyfleet catalog import-prices --genai $(SHARED)/genai-prices/data.json --write
	$(VENV)/bin/polyfleet catalog status --max-age-days 120 > /dev/null

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
