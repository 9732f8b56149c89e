# make course [PRESET=smoke|laptop|paper]  -- set up .venv, execute the notebooks into runs/<preset>/
# make test                                -- set up .venv (with dev extras), run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= laptop

.PHONY: setup course test clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

course: setup
	MPLBACKEND=Agg $(PY) -m gifd_lite course --preset $(PRESET)

test: setup
	$(PY) -m pytest -q -p no:cacheprovider --durations=15 tests --nbval-lax notebooks

clean:
	rm -rf runs .pytest_cache
