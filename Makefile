# Two commands do everything on a fresh machine (Python 3.11, pip, make):
#   make run    set up and run the main job
#   make test   set up and run the tests (what CI runs)
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
A ?= tests/data/astronaut.jpg
B ?= tests/data/cameraman.jpg

.PHONY: setup run compare test bench eval train eval-fhe

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# Main job: the Streamlit app (http://localhost:8501): compare two photos under FHE.
run: setup
	$(PY) -m streamlit run streamlit_app.py --server.headless true

# The client encoder alone, in clear: compare two photos.
compare: setup
	$(PY) -m client_encoder compare $(A) $(B)

test: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -v -rs

# Figures quoted in the README. LFW_DIR must point at an LFW copy (the original release) for
# everything but bench-encoder, which falls back to a bundled photo.
bench: setup
	$(PY) -m training.bench_encoder
	$(PY) -m training.bench_head

eval: setup
	$(PY) -m training.eval_clear --calibrate

train: setup
	$(PY) -m training.train_head

# Real FHE over all 6000 pairs: about an hour on 2 cores; resumable (run it again to go on).
eval-fhe: setup
	$(PY) -m training.eval_fhe
