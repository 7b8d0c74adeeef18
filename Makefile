# EmoNets: `make demo` runs the main job, `make test` the whole test suite (what CI runs),
# `make test-fast` the same without the tests marked slow, `make release` rebuilds the shipped
# fused model. All install first.
PY      ?= python3.11
VENV    ?= .venv
BIN     := $(VENV)/bin
DATA    ?=
STORE   ?= ./emonets-store
SITE    := $(VENV)/lib/python3.11/site-packages
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: install demo test test-fast release server server-stop server-status clean

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

# The whole train-all; with no DATA, on a small synthetic demo dataset generated into the store.
demo: install
	$(BIN)/emonets train-all $(DATA) --store $(STORE)

PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider

test: install
	$(PYTEST)

# Everything but the long end-to-end tests (marker `slow`, registered in pyproject.toml).
test-fast: install
	$(PYTEST) -m "not slow"

# Rebuild the fused model that ships in emonets/release/ from ../shared/data and print its figures
# (RELEASE_ARGS="--face shipped" reuses the shipped face ConvNet instead of its recipe's hours).
RELEASE_ARGS ?=
release: install
	$(BIN)/python scripts/build_release.py $(RELEASE_ARGS)

server: install
	STORE=$(STORE) scripts/prefect-server.sh start

server-stop:
	STORE=$(STORE) scripts/prefect-server.sh stop

server-status:
	STORE=$(STORE) scripts/prefect-server.sh status

clean:
	rm -rf $(VENV) $(STORE) .pytest_cache
