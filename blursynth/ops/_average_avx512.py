"""AVX-512 VBMI kernels for frame averaging, built with llvmlite's IR builder and compiled at run time.

What they do. Frame averaging looks up each 8-bit value of each frame in a
256-entry table of integer linear light, sums the window's frames, and reads
each sum out to the 8-bit level whose threshold it reaches. The kernels here
do exactly that, 64 values at a time; the sums are integers, so the bytes are
those of the scalar Numba kernels, bit for bit (the tests compare both).

Why they exist. Scalar look-ups cost several instructions per byte, and
AVX-512 gathers are slower still on recent Intel CPUs. VBMI's ``vpermi2b``
looks up 64 bytes in a 128-entry byte table in one instruction. With these
kernels the frames-average pipeline (no writing) ran at 261 frames/s against
211 with the scalar kernels, 0.83 against 0.67 of the raw decode rate
(benchmarks/RESULTS.md, "Frame averaging").

How. Each table entry ``L < 2**24`` is split into three byte planes (``L =
b0 + b1 << 8 + b2 << 16``); the one entry that may be exactly ``1 << 24``
(value 255 with the "none" response) is counted apart as the "top"
increment. Per frame and plane, two ``vpermi2b`` look up the low and high
128 entries and a select on the value's top bit picks one (:func:`_lookup`);
the plane bytes are added into 16-bit lanes, even and odd bytes apart, kept
in registers across the window's frames (at most :data:`MAX_FRAMES` = 255
frames of 255 cannot overflow), and combined into uint32 sums once per
window (:func:`_plane_sums`). The read-out (:func:`_read_out16`) is a binary
search over the 256 thresholds: eight compares, bit 7 of the level first,
against thresholds picked by ``vpermd``/``vpermi2d`` from the small step
tables of :func:`step_tables`, so the sums need not be stored.

How to read it. :func:`_module` builds the LLVM module with ``llvmlite.ir``:
one ``ir.Function`` per entry point, each a loop over 64-value vectors
(:func:`_vector_loop`) whose body calls the named steps above; the loop over
the frames is a second loop inside it with its accumulators as phi nodes.
``print(_module())`` shows the IR, its values named as in the code. It
compiles to the same machine code as the hand-written IR text this module
held before (the assembly of all six functions compared equal), and building
it through llvmlite's objects costs about 25 ms more, once per process (the
first call of :func:`available` takes about 0.12 s either way). The functions:

- ``window_sums_{set,add,sub}(frames, n_frames, n_vectors, tables, top_inc, steps, out)``:
  the window's uint32 sums stored in, added to or subtracted from ``out``;
- ``window_sums_levels(...)``: the same sums read out to 8-bit levels in
  ``out`` (uint8), never stored;
- ``levels(sums, n_vectors, steps, out)``: the read-out of stored sums;
- ``window_slide(adds, n_adds, subs, n_subs, n_vectors, tables, top_inc, steps, sums, out)``:
  a running sum moved to the next window (entering frames added, leaving
  ones subtracted), stored, and read out.

``frames`` is an array of frame pointers; ``tables`` the 12 rows of
:func:`plane_tables`. No pointer needs more than its element's alignment.
The Python functions below check the arguments and call the kernels through
ctypes (the GIL is released). Nothing runs on a CPU without AVX-512 BW and
VBMI, when ``BLURSYNTH_SIMD=0``, or when compiling fails (one warning): the
functions then return ``False`` and callers use their scalar kernels.

(About 620 lines: the IR and the checked entry points that call it share one
argument contract, so they stay in one module.)
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
import warnings

import numpy as np
from llvmlite import ir

# Most frames one call may sum: 16-bit plane sums of up to 255 frames of 255
# cannot overflow, and 255 * 2**24 fits uint32.
MAX_FRAMES = 255
VECTOR_BYTES = 64

_lock = threading.Lock()
_kernel = None  # (engine, {name: function}) once compiled, False when unavailable
_tables: dict = {}

MODES = ("set", "add", "sub")

# Rows of the step tables (16 uint32 each) for the read-out's binary search
# over the 256 levels: bit b of the level is decided by thresholds
# T[i * 2**(b + 1) + 2**b], i < 2**(7 - b), looked up by the higher bits.
# STEP_ROWS[b] = (first row, number of rows).
STEP_ROWS = {7: (0, 1), 6: (1, 1), 5: (2, 1), 4: (3, 1), 3: (4, 1), 2: (5, 2), 1: (7, 4), 0: (11, 8)}
N_STEP_ROWS = 19

I8, I16, I32, I64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
PTR = ir.PointerType()
BYTES = ir.VectorType(I8, 64)  # one vector of frame values or plane bytes
WORDS = ir.VectorType(I16, 32)  # the same 64 bytes as 16-bit lanes
HALF_SUMS = ir.VectorType(I32, 32)  # sums of the even (or odd) 32 values
SUMS = ir.VectorType(I32, 64)  # the sums of one vector's 64 values, in order
QUARTER = ir.VectorType(I32, 16)  # 16 sums: one zmm register, as the read-out takes them
LEVELS16 = ir.VectorType(I8, 16)  # the 8-bit levels of one QUARTER
WINDOW_ARGS = (PTR, I64, I64, PTR, I8, PTR, PTR)  # window_sums_*: frames, n, n_vectors, tables, top, steps, out


@functools.cache
def _vec(vector_type: ir.VectorType, value) -> ir.Constant:
    """The vector constant with ``value`` in every lane (``value`` a tuple: one per lane), made once.

    llvmlite caches a constant's IR text on the object, but formats it lane by
    lane for each new object; the kernels use a few dozen constants some 600
    times, and one object each cut the time to build the IR text from about
    40 ms to 28 ms.
    """
    return ir.Constant(vector_type, None if value == 0 else list(value) if isinstance(value, tuple) else value)


def _indices(count: int, values) -> ir.Constant:
    """A shufflevector mask of ``count`` lanes."""
    return _vec(ir.VectorType(I32, count), tuple(values))


class _Intrinsics:
    """The three AVX-512 permutes, declared in ``module``."""

    def __init__(self, module: ir.Module):
        def declare(name, ret, *args):
            return ir.Function(module, ir.FunctionType(ret, args), name=name)

        # vpermi2b: 64 bytes looked up in the 128-byte table (a, b) by the low 7 bits of idx.
        self.vpermi2b = declare("llvm.x86.avx512.vpermi2var.qi.512", BYTES, BYTES, BYTES, BYTES)
        # vpermd: 16 dwords looked up in the 16-dword table a by the low 4 bits of idx.
        self.vpermd = declare("llvm.x86.avx512.permvar.si.512", QUARTER, QUARTER, QUARTER)
        # vpermi2d: 16 dwords looked up in the 32-dword table (a, b) by the low 5 bits of idx.
        self.vpermi2d = declare("llvm.x86.avx512.vpermi2var.d.512", QUARTER, QUARTER, QUARTER, QUARTER)


class _Kernel:
    """One function being built: its builder, intrinsics, and the values its steps share."""

    def __init__(self, module, intrinsics, name, arg_types, arg_names):
        self.fn = ir.Function(module, ir.FunctionType(ir.VoidType(), arg_types), name=name)
        self.args = dict(zip(arg_names, self.fn.args))
        for arg, arg_name in zip(self.fn.args, arg_names):
            arg.name = arg_name
        self.b = ir.IRBuilder(self.fn.append_basic_block("entry"))
        self.x86 = intrinsics
        self.tables = self.tinc = self.steps = None

    def load_rows(self, ptr, row_type, n, name, align):
        """``n`` consecutive vectors of ``row_type`` at ``ptr``."""
        b = self.b
        return [b.load(b.gep(ptr, [ir.Constant(I64, j)], source_etype=row_type), typ=row_type, align=align,
                       name=f"{name}{j}")
                for j in range(n)]

    def load_tables(self):
        """The 12 plane-table rows (plane p, quarter q at row 4p + q) and the top increment in every byte."""
        b = self.b
        self.tables = self.load_rows(self.args["tables"], BYTES, 12, "t", align=1)
        one = b.insert_element(ir.Constant(BYTES, ir.Undefined), self.args["top_inc"], ir.Constant(I64, 0))
        self.tinc = b.shuffle_vector(one, ir.Constant(BYTES, ir.Undefined), _indices(64, [0] * 64), name="tinc")

    def load_steps(self):
        self.steps = self.load_rows(self.args["steps"], QUARTER, N_STEP_ROWS, "q", align=4)


def _vector_loop(k: _Kernel, body) -> None:
    """``for v in range(n_vectors): body(offset)`` with ``offset = 64 * v``, then ``ret``.

    The callers run it only with ``n_vectors >= 1``, so the test is at the loop's end.
    """
    b = k.b
    entry = b.block
    loop = k.fn.append_basic_block("vloop")
    end = k.fn.append_basic_block("exit")
    b.branch(loop)
    b.position_at_end(loop)
    v = b.phi(I64, name="v")
    v.add_incoming(ir.Constant(I64, 0), entry)
    body(b.mul(v, ir.Constant(I64, VECTOR_BYTES), name="off"))
    v_next = b.add(v, ir.Constant(I64, 1), name="v1")
    v.add_incoming(v_next, b.block)  # the body may have ended in another block
    b.cbranch(b.icmp_unsigned("<", v_next, k.args["n_vectors"]), loop, end)
    b.position_at_end(end)
    b.ret_void()


def _lookup(k: _Kernel, x, is_high, plane: int, name: str):
    """Plane ``plane`` of ``table[x]`` for 64 bytes ``x``: a 256-entry byte table in two ``vpermi2b``.

    ``vpermi2b`` indexes 128 bytes by the low 7 bits; ``is_high`` (the top bit
    of ``x``) picks the look-up in the upper 128 entries.
    """
    b, t = k.b, k.tables[4 * plane:4 * plane + 4]
    low = b.call(k.x86.vpermi2b, [t[0], x, t[1]], name=f"{name}lo{plane}")
    high = b.call(k.x86.vpermi2b, [t[2], x, t[3]], name=f"{name}up{plane}")
    return b.select(is_high, high, low, name=f"{name}b{plane}")


def _split_bytes(b: ir.IRBuilder, value, name: str):
    """64 bytes as (even bytes, odd bytes), each zero-extended into 32 16-bit lanes."""
    words = b.bitcast(value, WORDS, name=f"{name}w")
    return (b.and_(words, _vec(WORDS, 255), name=f"{name}e"),
            b.lshr(words, _vec(WORDS, 8), name=f"{name}o"))


def _plane_sums(k: _Kernel, frames, n_frames, off, name: str):
    """The table sums over ``n_frames`` frames (pointers at ``frames``) at byte ``off``: 64 uint32, in order.

    A loop over the frames (none when ``n_frames == 0``: the sums are zero)
    with the plane sums in its phi nodes: per plane, the even and the odd
    bytes in 16-bit lanes, and the count of "top" increments in 8-bit lanes.
    """
    b = k.b
    before = b.block
    loop = k.fn.append_basic_block(f"{name}loop")
    done = k.fn.append_basic_block(f"{name}done")
    b.cbranch(b.icmp_unsigned("!=", n_frames, ir.Constant(I64, 0), name=f"{name}any"), loop, done)

    b.position_at_end(loop)
    f = b.phi(I64, name=f"{name}f")
    even = [b.phi(WORDS, name=f"{name}e{p}") for p in range(3)]
    odd = [b.phi(WORDS, name=f"{name}o{p}") for p in range(3)]
    tops = b.phi(BYTES, name=f"{name}c")
    frame = b.load(b.gep(frames, [f], source_etype=PTR), typ=PTR, align=8, name=f"{name}fp")
    x = b.load(b.gep(frame, [off], source_etype=I8), typ=BYTES, align=1, name=f"{name}x")
    is_high = b.icmp_signed("<", x, _vec(BYTES, 0), name=f"{name}hi")
    new_even, new_odd = [], []
    for p in range(3):
        plane_even, plane_odd = _split_bytes(b, _lookup(k, x, is_high, p, name), f"{name}{p}")
        new_even.append(b.add(even[p], plane_even, name=f"{name}e{p}n"))
        new_odd.append(b.add(odd[p], plane_odd, name=f"{name}o{p}n"))
    # The top plane: 1 << 24 for the value 255 when the table reaches exactly 1 << 24.
    is255 = b.icmp_unsigned("==", x, _vec(BYTES, 255), name=f"{name}is255")
    new_tops = b.add(tops, b.select(is255, k.tinc, _vec(BYTES, 0), name=f"{name}inc"), name=f"{name}cn")
    f_next = b.add(f, ir.Constant(I64, 1), name=f"{name}f1")
    b.cbranch(b.icmp_unsigned("<", f_next, n_frames, name=f"{name}more"), loop, done)

    f.add_incoming(ir.Constant(I64, 0), before)
    f.add_incoming(f_next, loop)
    phis, updates = even + odd + [tops], new_even + new_odd + [new_tops]
    for phi, new in zip(phis, updates):
        phi.add_incoming(_vec(phi.type, 0), before)
        phi.add_incoming(new, loop)

    b.position_at_end(done)
    final = []
    for phi, new in zip(phis, updates):  # zero when the loop did not run
        out = b.phi(phi.type, name=f"{phi.name}d")
        out.add_incoming(_vec(phi.type, 0), before)
        out.add_incoming(new, loop)
        final.append(out)
    tops_even, tops_odd = _split_bytes(b, final[6], f"{name}c")
    halves = []
    for half, planes in (("e", final[0:3] + [tops_even]), ("o", final[3:6] + [tops_odd])):
        # Plane j of the sum is worth 2**(8j): sum = p0 + p1 << 8 + p2 << 16 + top << 24.
        total = b.zext(planes[0], HALF_SUMS, name=f"{name}{half}z0")
        for j in range(1, 4):
            wide = b.zext(planes[j], HALF_SUMS, name=f"{name}{half}z{j}")
            total = b.add(total, b.shl(wide, _vec(HALF_SUMS, 8 * j), name=f"{name}{half}s{j}"),
                          name=f"{name}{half}a{j}")
        halves.append(total)
    # Interleave the even and the odd values back into order.
    order = (j // 2 + (32 if j % 2 else 0) for j in range(64))
    return b.shuffle_vector(halves[0], halves[1], _indices(64, order), name=f"{name}sum")


def _read_out16(k: _Kernel, sums, name: str):
    """The levels (<16 x i8>) of 16 uint32 ``sums``: the largest ``level`` with ``T[level] <= sum``.

    Binary search, bit 7 first: with the higher bits ``hi = level >> (bit + 1)``
    known, ``bit`` is set when the sum reaches ``T[hi * 2**(bit + 1) + 2**bit]``,
    the ``hi``-th entry of that bit's step rows (:data:`STEP_ROWS`).
    """
    b = k.b
    level = _vec(QUARTER, 0)
    for bit in range(7, -1, -1):
        row, n_rows = STEP_ROWS[bit]
        hi = b.lshr(level, _vec(QUARTER, bit + 1), name=f"{name}i{bit}")
        threshold = _pick_threshold(k, k.steps[row:row + n_rows], hi, f"{name}t{bit}")
        reached = b.icmp_unsigned(">=", sums, threshold, name=f"{name}c{bit}")
        level = b.or_(level, b.select(reached, _vec(QUARTER, 1 << bit), _vec(QUARTER, 0),
                                      name=f"{name}a{bit}"), name=f"{name}k{bit}")
    return b.trunc(level, LEVELS16, name=f"{name}level")


def _pick_threshold(k: _Kernel, rows, index, name: str):
    """``table[index]`` from step rows of 16 entries each (1, 2, 4 or 8 rows)."""
    b = k.b
    if len(rows) == 1:
        return b.call(k.x86.vpermd, [rows[0], index], name=name)
    # vpermi2d covers 32 entries (two rows); index bits 5 and 6 then pick among those lookups.
    parts = [b.call(k.x86.vpermi2d, [rows[2 * j], index, rows[2 * j + 1]], name=f"{name}p{j}")
             for j in range(len(rows) // 2)]
    bit = 32
    while len(parts) > 1:
        upper = b.icmp_unsigned("!=", b.and_(index, _vec(QUARTER, bit)), _vec(QUARTER, 0),
                                name=f"{name}s{bit}")
        parts = [b.select(upper, parts[j + 1], parts[j], name=f"{name}m{bit}") for j in range(0, len(parts), 2)]
        bit *= 2
    return parts[0]


def _store_levels(k: _Kernel, sums, off) -> None:
    """Read 64 uint32 ``sums`` out to levels and store the 64 bytes at ``out + off``."""
    b = k.b
    undefined = ir.Constant(SUMS, ir.Undefined)
    quarters = [b.shuffle_vector(sums, undefined, _indices(16, range(16 * q, 16 * q + 16)), name=f"sq{q}")
                for q in range(4)]
    levels = [_read_out16(k, quarter, f"r{q}") for q, quarter in enumerate(quarters)]
    low = b.shuffle_vector(levels[0], levels[1], _indices(32, range(32)), name="lvlo")
    high = b.shuffle_vector(levels[2], levels[3], _indices(32, range(32)), name="lvhi")
    joined = b.shuffle_vector(low, high, _indices(64, range(64)), name="lv")
    b.store(joined, b.gep(k.args["out"], [off], source_etype=I8), align=1)


def _sums_at(k: _Kernel, ptr, off):
    """The address of the 64 uint32 sums of vector ``off`` in ``ptr``."""
    return k.b.gep(ptr, [off], source_etype=I32)


def _window_sums(module, x86, mode: str) -> None:
    """``window_sums_<mode>``: the window's sums stored (``set``), added, subtracted or read out (``levels``)."""
    k = _Kernel(module, x86, f"window_sums_{mode}", WINDOW_ARGS,
                ("frames", "n_frames", "n_vectors", "tables", "top_inc", "steps", "out"))
    if mode == "levels":
        k.load_steps()
    k.load_tables()

    def body(off):
        b = k.b
        sums = _plane_sums(k, k.args["frames"], k.args["n_frames"], off, "s")
        if mode == "levels":
            _store_levels(k, sums, off)
            return
        at = _sums_at(k, k.args["out"], off)
        if mode != "set":
            old = b.load(at, typ=SUMS, align=4, name="old")
            sums = b.add(old, sums, name="new") if mode == "add" else b.sub(old, sums, name="new")
        b.store(sums, at, align=4)

    _vector_loop(k, body)


def _levels(module, x86) -> None:
    """``levels``: stored uint32 sums read out to levels."""
    k = _Kernel(module, x86, "levels", (PTR, I64, PTR, PTR), ("sums", "n_vectors", "steps", "out"))
    k.load_steps()
    _vector_loop(k, lambda off: _store_levels(
        k, k.b.load(_sums_at(k, k.args["sums"], off), typ=SUMS, align=4, name="s"), off))


def _window_slide(module, x86) -> None:
    """``window_slide``: entering frames added to the running sums, leaving ones subtracted, stored, read out."""
    k = _Kernel(module, x86, "window_slide", (PTR, I64, PTR, I64, I64, PTR, I8, PTR, PTR, PTR),
                ("adds", "n_adds", "subs", "n_subs", "n_vectors", "tables", "top_inc", "steps", "sums", "out"))
    k.load_steps()
    k.load_tables()

    def body(off):
        b = k.b
        entering = _plane_sums(k, k.args["adds"], k.args["n_adds"], off, "a")
        leaving = _plane_sums(k, k.args["subs"], k.args["n_subs"], off, "l")
        at = _sums_at(k, k.args["sums"], off)
        old = b.load(at, typ=SUMS, align=4, name="old")
        new = b.sub(b.add(old, entering, name="grown"), leaving, name="new")
        b.store(new, at, align=4)
        _store_levels(k, new, off)

    _vector_loop(k, body)


def _module() -> ir.Module:
    """The LLVM module of all the kernels (``print(_module())`` shows its IR)."""
    module = ir.Module(name="blursynth_simd")
    x86 = _Intrinsics(module)
    for mode in MODES + ("levels",):
        _window_sums(module, x86, mode)
    _levels(module, x86)
    _window_slide(module, x86)
    return module


def cpu_supported() -> bool:
    """Whether this CPU has the instructions the kernels use (AVX-512 BW and VBMI)."""
    from llvmlite import binding as llvm

    try:
        features = llvm.get_host_cpu_features()
    except RuntimeError:  # features unreadable on this host: assume none
        return False
    return bool(features.get("avx512bw") and features.get("avx512vbmi"))


def _compile():
    from llvmlite import binding as llvm

    if not cpu_supported():
        return False
    features = llvm.get_host_cpu_features()
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    module = llvm.parse_assembly(str(_module()))
    module.verify()
    target = llvm.Target.from_default_triple()
    machine = target.create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=features.flatten(), opt=3, codemodel="jitdefault",
    )
    engine = llvm.create_mcjit_compiler(module, machine)
    engine.finalize_object()
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    signature = ctypes.CFUNCTYPE(None, p, i64, i64, p, ctypes.c_int8, p, p)
    functions = {mode: signature(engine.get_function_address(f"window_sums_{mode}")) for mode in MODES + ("levels",)}
    functions["readout"] = ctypes.CFUNCTYPE(None, p, i64, p, p)(engine.get_function_address("levels"))
    functions["slide"] = ctypes.CFUNCTYPE(None, p, i64, p, i64, i64, p, ctypes.c_int8, p, p, p)(
        engine.get_function_address("window_slide"))
    return engine, functions


def available() -> bool:
    """Whether the vector kernel runs here (compiled on first call, about 0.1 s)."""
    global _kernel
    if os.environ.get("BLURSYNTH_SIMD", "1") == "0":
        return False
    with _lock:
        if _kernel is None:
            try:
                _kernel = _compile()
            except Exception as exc:  # an LLVM without these intrinsics: the scalar kernels still work
                _kernel = False
                warnings.warn(f"the AVX-512 averaging kernel did not compile ({type(exc).__name__}: {exc}); "
                              "using the scalar kernels", RuntimeWarning, stacklevel=2)
    return _kernel is not False


def plane_tables(lut: np.ndarray):
    """The byte-plane tables and top increment for ``lut``, or None when it does not split.

    Returns
    -------
    tables : (12, 64) uint8 ndarray, 64-byte aligned
        Plane ``p`` (bits ``8p`` to ``8p + 7`` of each entry), quarter ``q``
        (entries ``64q`` to ``64q + 63``) at row ``4p + q``.
    top : int
        1 when entry 255 is exactly ``1 << 24`` (and no other entry reaches
        bit 24), else 0 (no entry reaches it).

    Examples
    --------
    >>> t, top = plane_tables(np.arange(256, dtype=np.uint32))
    >>> t.shape, top, int(t[1, 0])  # plane 0, quarter 1 starts at entry 64
    ((12, 64), 0, 64)
    """
    if lut.dtype.kind not in "ui":
        return None
    key = (lut.dtype.str, lut.tobytes())
    if key in _tables:
        return _tables[key]
    values = lut.astype(np.int64)
    top = int(values[255] == 1 << 24)
    low = values - (top << 24) * (np.arange(256) == 255)
    result = None
    if values.min() >= 0 and low.max() < 1 << 24:
        raw = np.empty(12 * 64 + 63, dtype=np.uint8)
        start = -raw.ctypes.data % 64
        tables = raw[start:start + 12 * 64].reshape(12, 64)
        for p in range(3):
            tables[4 * p:4 * p + 4] = ((low >> (8 * p)) & 255).astype(np.uint8).reshape(4, 64)
        result = (tables, top)
    _tables[key] = result
    return result


def window_sums(frames, lut: np.ndarray, out: np.ndarray, mode: str = "set") -> bool:
    """``out[i] = sum(lut[f[i]] for f in frames)`` for the leading whole vectors; False if not run.

    With ``mode='add'`` the sums are added to ``out`` instead (``'sub'``:
    subtracted from it), modulo 2**32 as uint32 arithmetic.

    Parameters
    ----------
    frames : list of 1-D uint8 C-contiguous ndarray, all of ``out.size`` bytes
        1 to :data:`MAX_FRAMES` of them.
    lut : (256,) integer ndarray
    out : 1-D uint32 C-contiguous ndarray

    Returns
    -------
    bool
        True when the first ``out.size // 64 * 64`` sums were written (the
        caller sums the rest); False when this CPU or table cannot use the
        kernel and nothing was written.

    Notes
    -----
    The call releases the GIL.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
    return _run_window(mode, frames, lut, None, out, np.uint32)


def _split_here(lut, *counts):
    """``plane_tables(lut)`` when the kernels run here for calls of ``counts`` frames, else None."""
    if any(c > MAX_FRAMES for c in counts) or not available():
        return None
    return plane_tables(lut)


def _pointers(frames) -> np.ndarray:
    """The frames' data addresses (one null entry for none, so the array has an address)."""
    return np.array([f.ctypes.data for f in frames] or [0], dtype=np.uintp)


def _run_window(name, frames, lut, steps, out, dtype) -> bool:
    """Call ``window_sums_<name>`` on ``frames``; the checks and the call shared by its entry points."""
    split = _split_here(lut, len(frames)) if frames else None
    if split is None:
        return False
    tables, top = split
    _check(frames, out, dtype)
    if steps is not None:
        _check_steps(steps)
    n_vectors = out.size // VECTOR_BYTES
    if n_vectors:
        pointers = _pointers(frames)
        _kernel[1][name](pointers.ctypes.data, len(frames), n_vectors, tables.ctypes.data, top,
                         None if steps is None else steps.ctypes.data, out.ctypes.data)
    return True


def step_tables(thresholds: np.ndarray) -> np.ndarray:
    """The read-out's binary-search tables for the level thresholds of one frame count.

    Parameters
    ----------
    thresholds : (257,) ndarray, non-decreasing, ``thresholds[0] == 0``
        As :func:`blursynth.ops.encode8.sum_readout` makes them, all below 2**32.

    Returns
    -------
    steps : (19, 16) uint32 ndarray, 64-byte aligned

    Examples
    --------
    >>> steps = step_tables(np.arange(257) * 10)
    >>> int(steps[0, 0]), steps[1, :2].tolist()  # bit 7 tests T[128]; bit 6 tests T[64] or T[192]
    (1280, [640, 1920])
    """
    t = np.asarray(thresholds, dtype=np.uint64)
    if t.shape != (257,) or t[:256].max() >= 1 << 32:
        raise ValueError("thresholds must be 257 values, the first 256 below 2**32")
    raw = np.zeros(N_STEP_ROWS * 16 + 16, dtype=np.uint32)
    start = (-raw.ctypes.data % 64) // 4
    steps = raw[start:start + N_STEP_ROWS * 16].reshape(N_STEP_ROWS, 16)
    for b, (row, n_rows) in STEP_ROWS.items():
        values = t[np.arange(1 << (7 - b)) * (2 << b) + (1 << b)]
        steps.reshape(-1)[row * 16:row * 16 + values.size] = values
    return steps


def window_levels(frames, lut: np.ndarray, steps: np.ndarray, out: np.ndarray) -> bool:
    """The 8-bit average of ``frames`` for the leading whole vectors, sums never stored; False if not run.

    ``out[i]`` is the largest level ``k`` with ``T[k] <= sum(lut[f[i]] for f
    in frames)``, with ``steps = step_tables(T)``: what
    :class:`blursynth.ops.average.LinearAverager` reads out of the same sums.
    Arguments as :func:`window_sums`, with ``out`` uint8.
    """
    return _run_window("levels", frames, lut, steps, out, np.uint8)


def window_slide(adds, subs, lut: np.ndarray, steps: np.ndarray, sums: np.ndarray, out: np.ndarray) -> bool:
    """Move a running sum to the next window and read it out, in one pass; False if not run.

    For the leading whole vectors: ``sums[i] += sum(lut[f[i]] for f in adds)
    - sum(lut[f[i]] for f in subs)`` (uint32, modulo 2**32), then ``out[i]``
    is the largest ``k`` with ``T[k] <= sums[i]`` for ``steps =
    step_tables(T)``: what adding, subtracting and
    the scalar read-out of :class:`blursynth.ops.average.LinearAverager` do in three passes.

    Parameters
    ----------
    adds, subs : list of 1-D uint8 C-contiguous ndarray of ``sums.size`` bytes
        Up to :data:`MAX_FRAMES` each; either may be empty.
    lut : (256,) integer ndarray
    steps : (19, 16) uint32 ndarray
    sums : 1-D uint32 C-contiguous ndarray
    out : 1-D uint8 C-contiguous ndarray of ``sums.size`` values
    """
    split = _split_here(lut, len(adds), len(subs))
    if split is None:
        return False
    tables, top = split
    _check(adds + subs, sums, np.uint32)
    _check([], out, np.uint8, size=sums.size)
    _check_steps(steps)
    n_vectors = sums.size // VECTOR_BYTES
    if n_vectors:
        add_ptrs, sub_ptrs = _pointers(adds), _pointers(subs)
        _kernel[1]["slide"](add_ptrs.ctypes.data, len(adds), sub_ptrs.ctypes.data, len(subs), n_vectors,
                            tables.ctypes.data, top, steps.ctypes.data, sums.ctypes.data, out.ctypes.data)
    return True


def levels(sums: np.ndarray, steps: np.ndarray, out: np.ndarray) -> bool:
    """Read uint32 ``sums`` out to 8-bit levels for the leading whole vectors; False if not run.

    ``out[i]`` is the largest ``k`` with ``T[k] <= sums[i]``, for ``steps =
    step_tables(T)``.
    """
    if not available():
        return False
    if sums.dtype != np.uint32 or not sums.flags.c_contiguous or sums.ndim != 1 or not sums.flags.aligned:
        raise ValueError("sums must be a 1-D contiguous uint32 array")
    _check([], out, np.uint8, size=sums.size)
    _check_steps(steps)
    n_vectors = sums.size // VECTOR_BYTES
    if n_vectors:
        _kernel[1]["readout"](sums.ctypes.data, n_vectors, steps.ctypes.data, out.ctypes.data)
    return True


def _check(frames, out, dtype, size=None):
    size = out.size if size is None else size
    if out.dtype != dtype or out.ndim != 1 or out.size != size or not out.flags.c_contiguous or not out.flags.aligned:
        raise ValueError(f"out must be a 1-D contiguous {np.dtype(dtype).name} array of {size} values")
    for f in frames:
        if f.dtype != np.uint8 or f.ndim != 1 or f.size != size or not f.flags.c_contiguous:
            raise ValueError("frames must be 1-D contiguous uint8 arrays of the output's size")


def _check_steps(steps):
    if (steps.dtype != np.uint32 or steps.shape != (N_STEP_ROWS, 16) or not steps.flags.c_contiguous
            or not steps.flags.aligned):
        raise ValueError(f"steps must be step_tables(...): uint32 ({N_STEP_ROWS}, 16)")
