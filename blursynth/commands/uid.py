"""``blursynth uid train|deblur|blur``: disentangled blur (UID, Lu et al. 2019) from unpaired sets."""

from __future__ import annotations

import click


@click.group()
def uid():
    """Disentangled blur (UID, "Unsupervised Domain-Specific Deblurring via Disentangled
    Representations"): learn content and blur codes from unpaired sharp and real blurred photos
    of one domain; transfer a real photo's blur onto sharp photos, or deblur that domain.

    \b
    Example:
      blursynth uid train --sharp faces/ --real-blur blurry_faces/ --out model/ --steps 20000
      blursynth uid deblur blurry_faces/ --model model/ --out deblurred/
    """


# ---------------------------------------------------------------------------------------------
# uid train, uid deblur (model, training and deblurring: blursynth/uid/)


# ---------------------------------------------------------------------------------------------
# uid blur (pairs: blursynth/pairs/uid.py)
