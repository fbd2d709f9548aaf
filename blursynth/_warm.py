"""Imported by the dataset writer's fork server before it forks pool processes (a side effect on
import is what a fork server's preload list offers): Numba's CPU target is set up here once.

A process's first call of any jitted function sets the target up (its registries, and through
``numba.np.arraymath`` SciPy's BLAS bindings): about half a second on a quiet machine, several on
a loaded one. Done in the fork server, every forked worker starts with it done and renders its
first chunk at full speed. No thread is started (no parallel kernel runs), so forking stays safe.
"""

from __future__ import annotations


def _warm() -> None:
    import numba

    numba.njit(lambda x: x + 1)(1)


_warm()
