# The two commands a reader needs:  make lab   and   make test
# Both build .venv from requirements.txt first (once, and again when it changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab fresh-copies test test-browser notebooks lint clean

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed, this is " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	touch $(STAMP)

## Set everything up and open the series in JupyterLab, on your own copies of the chapters
## in my-notebooks/ (made on first use; the stored chapters in notebooks/ stay untouched).
lab: $(STAMP)
	@$(BIN)/python tools/lab.py $(LAB_ARGS)

## Replace your copies in my-notebooks/ with the stored chapters (yours are kept aside).
fresh-copies: $(STAMP)
	@$(BIN)/python tools/lab.py --fresh-copies

## Set everything up and run every test: unit tests, hygiene, ruff, nbval on every notebook,
## and every chapter with Run All in JupyterLab (skipped without chromium, except in CI).
test: $(STAMP)
	$(BIN)/python -m pytest

## Only the browser tests: every chapter run with Run All in JupyterLab in headless Chromium.
test-browser: $(STAMP)
	$(BIN)/python -m pytest tests/test_browser_chapters_1.py tests/test_browser_chapters_2.py tests/test_browser_checks.py

## Execute notebooks and store their outputs (all, or NB="notebooks/01_sockets.ipynb").
notebooks: $(STAMP)
	$(BIN)/python tools/store_notebooks.py $(NB)

lint: $(STAMP)
	$(BIN)/ruff check helpers tests tools solutions notebooks

clean:
	rm -rf $(VENV)
