"""The UID training run: settings, the update step, checkpoints (the run folder of nn/runs.py)."""

from __future__ import annotations

from .model import MODEL_FORMAT, MODEL_JSON, MODEL_VERSION, RUN_KIND, SAMPLES_DIR  # noqa: F401
