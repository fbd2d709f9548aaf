# Set-up, tests and the demo. Each target builds its own virtual environment (.venv) first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO ?= demo
# torch: the CPU build (2.13.0, a local wheel on the project's machines) unless an NVIDIA
# driver is present; override with e.g. `make TORCH_SPEC="torch==2.13.0+cu128" ...`, or install
# your own CUDA build into .venv before `make`: an installed torch is kept.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
PYTEST_ARGS ?=

.PHONY: venv test demo demo-frames demo-blur demo-leaves bench clean

$(BIN)/.installed: setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test]"
	# LPIPS's published linear heads: only the package's weight files are read (it imports
	# torchvision, which this torch build does not load), so it goes in without dependencies.
	$(BIN)/python -m pip install -q --no-deps lpips==0.1.4
	touch $@

venv: $(BIN)/.installed

test: venv
	$(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)

demo: venv
	$(BIN)/blursynth trajectories --n 2000 --out $(DEMO)/bank --workers 2 --overwrite
	$(BIN)/blursynth kernels preview $(DEMO)/bank --out $(DEMO)/kernels.png
	$(BIN)/blursynth kernels stats $(DEMO)/bank
	$(MAKE) demo-frames
	$(MAKE) demo-blur
	$(MAKE) demo-leaves

# Frame averaging: render a short 240 fps clip of a camera moving over a sample photo, then pair it.
demo-frames: venv
	mkdir -p $(DEMO)
	$(BIN)/python -c "from skimage import data; from blursynth.sources.photos import save_rgb8; save_rgb8('$(DEMO)/photo.png', data.astronaut())"
	$(BIN)/blursynth render-clip $(DEMO)/photo.png --out $(DEMO)/clip.mp4 --fps 240 --frames 120 --length-px 60 --size 384x384 --seed 1
	$(BIN)/blursynth frames-average $(DEMO)/clip.mp4 --window 5-25 --out $(DEMO)/frames_pairs --overwrite
	$(BIN)/blursynth dataset info $(DEMO)/frames_pairs
	$(BIN)/blursynth dataset preview $(DEMO)/frames_pairs --count 6 --out $(DEMO)/frames_pairs.png

# Trajectory blur: four sample photos, two 256x256 pairs each from the demo bank, realistic
# degradations on, and a contact sheet of blurred | sharp | PSF.
demo-blur: venv
	mkdir -p $(DEMO)/photos
	$(BIN)/python -c "from skimage import data; from blursynth.sources.photos import save_rgb8; [save_rgb8('$(DEMO)/photos/' + n + '.png', getattr(data, n)()) for n in ('astronaut', 'coffee', 'chelsea', 'rocket')]"
	test -f $(DEMO)/bank/manifest.json || $(BIN)/blursynth trajectories --n 2000 --out $(DEMO)/bank --workers 2
	$(BIN)/blursynth blur $(DEMO)/photos --kernels $(DEMO)/bank --out $(DEMO)/blur_pairs --per-image 2 --crop 256x256 --highlights 2-8 --noise 0.0002-0.002,0.001 --jpeg 85-95 --workers 2 --overwrite
	$(BIN)/blursynth dataset verify $(DEMO)/blur_pairs
	$(BIN)/blursynth dataset preview $(DEMO)/blur_pairs --count 8 --out $(DEMO)/blur_pairs.png

# Dead leaves: synthetic sharp images coloured like the demo photos, blurred like them.
demo-leaves: venv
	test -d $(DEMO)/photos || $(MAKE) demo-blur
	$(BIN)/blursynth render-leaves --n 4 --size 256 --colours-from $(DEMO)/photos --out $(DEMO)/leaves --quiet
	$(BIN)/blursynth blur $(DEMO)/leaves --kernels $(DEMO)/bank --out $(DEMO)/leaves_pairs --per-image 1 --workers 2 --overwrite
	$(BIN)/blursynth dataset preview $(DEMO)/leaves_pairs --count 4 --out $(DEMO)/leaves_pairs.png

bench: venv
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(DEMO) build *.egg-info
