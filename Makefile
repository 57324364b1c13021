# `make test`: every test, Rust and Python, on the one release build that
# `cargo run --release` also uses. `.ci/run` calls exactly this.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test test-rust test-python
test: test-rust test-python

test-rust:
	cargo test --release

test-python: $(PY)
	$(PY) -m pip install -q ./python
	$(PY) -m pytest -q python/tests

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q maturin pytest gymnasium pettingzoo numpy
