"""glibc's malloc told to keep freed memory for reuse (:func:`keep_freed_memory`), for the frame pipeline.

Why this is a module of its own: the setting is process-wide and changes how
much memory the process keeps, so nothing sets it by import; the frames-average
command and recipes ask for it explicitly in each process that makes pairs
(``write_frame_pairs(..., keep_freed=True)``), and a library caller's process
is left alone.
"""

from __future__ import annotations

_ALLOCATOR_TUNED = False


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse; process-wide, once. True when it took effect.

    Averaging allocates a frame-sized block per decoded frame and holds a
    window of them while it is summed. With glibc's defaults, blocks that size
    are mapped fresh and returned to the system as soon as they are freed, so
    every page of every frame is faulted in again: about 120-250 page faults
    per 720p frame here, which slowed the pipeline by a sixth
    (benchmarks/RESULTS.md, "Frame averaging"). Raising the mmap threshold to
    64 MiB and the trim threshold to 1 GiB keeps freed frames in the heap,
    where the next frames reuse them; the cost is that the process keeps
    its peak memory (up to 1 GiB of freed blocks) instead of returning it.
    The frames-average command and recipes ask for this
    (``write_frame_pairs(..., keep_freed=True)``) in every process that
    makes pairs; a library caller's process is left alone unless it asks.
    Does nothing where the C library is not glibc.

    Examples
    --------
    >>> keep_freed_memory()  # doctest: +SKIP
    True
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    import ctypes

    try:
        # The program's own symbols, libc's among them: ctypes.util.find_library would run
        # ldconfig in a subprocess to find the same library.
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    _ALLOCATOR_TUNED = bool(mallopt(m_mmap_threshold, 64 << 20) and mallopt(m_trim_threshold, 1 << 30))
    return _ALLOCATOR_TUNED
