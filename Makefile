# Two commands do everything on a fresh machine (Python 3.11, pip, make):
#   make run    set up and run the main job
#   make test   set up and run the tests (what CI runs)
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
A ?= privface/examples/astronaut.jpg
B ?= privface/examples/cameraman.jpg

.PHONY: setup run serve compare test bench bench-service bench-identify eval train eval-fhe

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

# Main job: the Streamlit app (http://localhost:8501): compare two photos under FHE. No file
# watcher: watching the tree (the .venv included) overflows inotify and slows every comparison.
run: setup
	$(PY) -m streamlit run streamlit_app.py --server.headless true --server.fileWatcherType none

# The verification server alone (FastAPI; keys + SQLite templates in DATA_DIR).
DATA_DIR ?= $(HOME)/.privface/server
serve: setup
	$(PY) -m fhe_head.service --host 127.0.0.1 --port 8000 --data-dir $(DATA_DIR)

# The client encoder alone, in clear: compare two photos. Exit status 3 means "different people",
# an answer rather than a failure, so make does not report it as an error.
compare: setup
	$(PY) -m client_encoder compare $(A) $(B) || test $$? -eq 3

test: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -v -rs

# Figures quoted in the README. LFW_DIR must point at an LFW copy (the original release) for
# everything but bench-encoder, which falls back to a bundled photo.
bench: setup
	$(PY) -m training.bench.encoder
	$(PY) -m training.bench.head

# Load test of the service on loopback: 4 clients x 25 verifications (fast point).
bench-service: setup
	$(PY) -m training.bench.service --clients 4 --verifies 25
	$(PY) -m training.bench.service_hostile --seconds 20 --owners 6
	$(PY) -m training.bench.key_memory

# 1:N identification: embedded vs a loopback Ray cluster (1 and 2 workers), batched vs one per run.
bench-identify: setup
	$(PY) -m training.bench.identify_scaling

eval: setup
	$(PY) -m training.eval_clear --calibrate

# Set LFW_DEEPFUNNELED_DIR to also report the shipped points on the deep-funneled variant.
train: setup
	$(PY) -m training.train_head
	@if [ -n "$(LFW_DEEPFUNNELED_DIR)" ]; then \
		$(PY) -m training.train_head --lfw-dir "$(LFW_DEEPFUNNELED_DIR)" --dims 10 64; fi

# Real FHE over all 6000 pairs, both points: hours on 2 cores (the server time per pair is in
# artifacts/metrics/lfw_fhe*.json); resumable from a checkpoint in ~/.cache/privface/eval_fhe
# (run it again to go on).
eval-fhe: setup
	$(PY) -m training.eval_fhe --point fast
	$(PY) -m training.eval_fhe --point accurate
