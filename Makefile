# qatlib: the library, its tests and the executable book.
#   make book   build the book (every chapter executed at its default preset) into _build/html
#   make test   the whole test suite: unit + property tests, doctests, every chapter under nbval
#               at its quick preset, and a headless-Chromium check of a quick build of the site
# Both create and fill the virtual environment .venv on first use (Python 3.11+).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install book book-quick test clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# The execution cache keys on a chapter's code, and Sphinx re-reads only changed sources; neither
# sees the committed artefacts a page reads. When a results/**/metrics.json is newer than the last
# build, both are dropped, so every page re-executes and no page shows old numbers.
define fresh_cache
	@if [ -f $(1)/.results-stamp ] && [ -n "$$(find results -name metrics.json -newer $(1)/.results-stamp)" ]; then \
	  echo "results/ changed since the last build: re-executing every page"; rm -rf $(1)/.jupyter_cache $(1)/.doctrees; fi
endef

book: $(STAMP)
	$(call fresh_cache,_build)
	$(BIN)/jupyter-book build . -W -n --keep-going
	touch _build/.results-stamp

book-quick: $(STAMP)
	$(call fresh_cache,_build/quick/_build)
	QATLIB_PRESET=quick $(BIN)/jupyter-book build . --path-output _build/quick -W -n --keep-going
	touch _build/quick/_build/.results-stamp

test: book-quick
	QATLIB_PRESET=quick $(BIN)/python -m pytest

clean:
	rm -rf _build test-artifacts runs .pytest_cache
