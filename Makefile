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

book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going

book-quick: $(STAMP)
	QATLIB_PRESET=quick $(BIN)/jupyter-book build . --path-output _build/quick -W -n --keep-going

test: book-quick
	QATLIB_PRESET=quick $(BIN)/python -m pytest

clean:
	rm -rf _build test-artifacts runs .pytest_cache
