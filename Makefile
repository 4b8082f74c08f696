# Two commands: `make demo` and `make test`. Both create .venv and install what they need.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The pinned CPU torch first: an unpinned one pulls a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/monitor demo

# Two runs, both always: what only computes or waits shares the two cores (pytest-xdist, one
# test file per worker), then what asserts a time bound (`wallclock`) or records from the
# microphone (`audio`) runs alone. Exit 5 (nothing collected, e.g. under -k) fails neither.
test: $(STAMP)
	@a=0; b=0; \
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -m "not gpu and not audio and not wallclock" \
		-n 2 --dist loadfile --durations=15 $(PYTEST_ARGS) || a=$$?; \
	$(BIN)/python -m pytest -m "(audio or wallclock) and not gpu" --durations=15 $(PYTEST_ARGS) || b=$$?; \
	[ $$a -ne 5 ] || a=0; [ $$b -ne 5 ] || b=0; \
	[ $$a -eq 0 ] && [ $$b -eq 0 ] || { echo "make test: pytest exited $$a (shared cores) and $$b (alone)"; exit 1; }

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not gpu and not slow and not kafka and not audio" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
