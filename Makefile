# The two commands a reader needs:  make lab   and   make test
# Both build .venv from requirements.txt first (once, and again when it changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lab test notebooks lint clean

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed, this is " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	touch $(STAMP)

## Set everything up and open the series in JupyterLab.
# (JupyterLab refuses to run as root unless told; containers often run as root.)
lab: $(STAMP)
	$(BIN)/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) --ServerApp.root_dir=. $(LAB_ARGS) notebooks/00_index.ipynb

## Set everything up and run every test: unit tests, hygiene, ruff, nbval on every notebook.
test: $(STAMP)
	$(BIN)/python -m pytest

## Execute notebooks and store their outputs (all, or NB="notebooks/01_sockets.ipynb").
notebooks: $(STAMP)
	$(BIN)/python tools/store_notebooks.py $(NB)

lint: $(STAMP)
	$(BIN)/ruff check helpers tests tools solutions notebooks

clean:
	rm -rf $(VENV)
