# Two commands do all set-up on a fresh machine (see README.md):
#   make book   build the HTML book into _build/html from the committed notebook outputs
#               (in its own small environment, .venv-book: requirements-book.txt, no torch)
#   make test   unit tests, every notebook in the smoke budget (nbval, on the reader's path), the book build and browser tests
# And for maintainers:
#   make notebook NB=chapters/ch3_1_cnn.ipynb   re-run a chapter in the full budget and record its provenance
#   make student        the exercise notebooks without their solutions, into _build/student/
#   make bench          every benchmark in full (hours), into benchmarks/results and benchmarks/RESULTS.md

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BOOK_VENV  ?= .venv-book
BOOK_STAMP := $(BOOK_VENV)/.installed
NB     ?= chapters/*.ipynb

.PHONY: book test unit notebook bench bench-quick student clean

# $(call install,VENV_DIR,REQUIREMENTS): make the environment if missing, install the pins, stamp it
define install
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install -q --upgrade pip
	$(1)/bin/python -m pip install -q -r $(2)
	touch $(1)/.installed
endef

$(STAMP): requirements.txt requirements-book.txt pyproject.toml
	$(call install,$(VENV),requirements.txt)

# the book renders committed outputs, so it needs only its toolchain (dlbook's heavy imports are mocked)
$(BOOK_STAMP): requirements-book.txt
	$(call install,$(BOOK_VENV),requirements-book.txt)

book: $(BOOK_STAMP)
	$(BOOK_VENV)/bin/jupyter-book build . --all --warningiserror --nitpick --keep-going

# every notebook runs under nbval inside tests/test_reader_path.py, as a reader would run it (see its docstring)
test: book $(STAMP)
	DLBOOK_BOOK_BUILT=1 DLBOOK_BUDGET=smoke $(PY) -m pytest -p no:cacheprovider --durations=15 tests

unit: $(STAMP)
	$(PY) -m pytest -p no:cacheprovider -m "not book and not reader" tests

notebook: $(STAMP)  # needs DLBOOK_DATA where there is no internet (e.g. DLBOOK_DATA=../shared/data)
	flock /tmp/dlbook-cpu.lock $(PY) tools/execute_notebooks.py $(NB)

bench: $(STAMP)  # needs DLBOOK_DATA where there is no internet; a quiet machine: see benchmarks/README.md
	flock /tmp/dlbook-cpu.lock $(PY) benchmarks/run_all.py

bench-quick: $(STAMP)  # checks every benchmark script works; measures nothing worth quoting
	$(PY) benchmarks/run_all.py --quick --out-dir _build/bench-quick

student: $(STAMP)  # student versions of the exercise notebooks (solutions removed) into _build/student/
	$(PY) tools/make_student.py --out _build/student

clean:
	rm -rf _build
