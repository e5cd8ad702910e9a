VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

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

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
