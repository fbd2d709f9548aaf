"""Numba's CPU target set up once in this process, before it forks pool processes; imported by a
row feed's process before it forks, and by the dataset writer's fork server (a side effect on
import is what a fork server's preload list offers).

A process's first call of any jitted function sets the target up (its registries, and through
``numba.np.arraymath`` SciPy's BLAS bindings): about a quarter of a second on a quiet machine,
several on a loaded one. Done before the fork, every forked worker starts with it done and
renders its first chunk at full speed. The function called is cached on disk like the
kernels, so after the first run it is loaded, not compiled (compiling even ``x + 1`` takes
about 0.06 s, all of it before the first pair). No thread is started (no parallel kernel
runs), so forking stays safe.
"""

from __future__ import annotations

from ._numba import njit


@njit
def _one(x):
    return x + 1


def _warm() -> None:
    _one(1)


_warm()
