"""``python -m blursynth``: same as the ``blursynth`` command."""

from .cli import entry_point

entry_point()
