# make demo   -- set up .venv if needed, then run the demo on built-in defaults
# make test   -- set up .venv if needed (with test extras), then run the tests
# make bench  -- run the benchmarks that are quick enough to run routinely

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.simreal-installed
export MUJOCO_GL ?= egl

.PHONY: demo test bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first and pinned: on a CPU machine this is the CPU build, and
	# nothing later pulls another torch (2.13.0 satisfies the package's range).
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/simreal demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/env_throughput.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
