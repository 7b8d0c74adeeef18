# EmoNets: `make demo` runs the main job, `make test` the whole test suite. Both install first.
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
DATA    ?= ../shared/data/crema-d
STORE   ?= ./emonets-store
SITE    := $(VENV)/lib/python3.11/site-packages

.PHONY: install demo test clean

install: $(VENV)/.installed

# The dlib shim (vendor/dlib-shim) satisfies face-recognition's `dlib` requirement with the
# prebuilt dlib-bin wheel: never a source build of dlib. compileall: this machine sets
# PYTHONDONTWRITEBYTECODE=1, and without byte-code every process spends ~10 s more importing.
$(VENV)/.installed: pyproject.toml vendor/dlib-shim/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q "setuptools>=77.0.3,<81" wheel
	$(BIN)/pip install -q ./vendor/dlib-shim
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip check
	$(BIN)/python -m compileall -q -j 2 $(SITE) > /dev/null || true
	touch $@

demo: install
	$(BIN)/emonets ingest $(DATA) --store $(STORE)

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

clean:
	rm -rf $(VENV) $(STORE) .pytest_cache
