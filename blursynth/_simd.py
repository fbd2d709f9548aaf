"""Vector kernels for CPUs with AVX-512 VBMI, compiled at run time through llvmlite (Numba's LLVM).

Frame averaging spends its time looking up each 8-bit value in a 256-entry
table of integer linear light. Scalar look-ups cost several instructions per
byte, and AVX-512 gathers are slower still on recent Intel CPUs. VBMI's
``vpermi2b`` looks up 64 bytes in a 128-entry byte table in one instruction,
so the table is split into byte planes: linear value ``L = b0 + b1 << 8 +
b2 << 16 + top << 24``, each plane looked up with two ``vpermi2b`` (low and
high half of the 256 entries) and a select on the value's top bit. Plane sums
are kept in 16-bit lanes (at most 255 frames of at most 255), and combined
into the uint32 sum once per window. The sums are integers, so they equal the
scalar kernels' sums bit for bit; the tests compare both paths.

Nothing here runs on a CPU without AVX-512 BW and VBMI, or when the
environment sets ``BLURSYNTH_SIMD=0``: :func:`window_sums` then returns
``False`` and callers use their scalar kernels.
"""

from __future__ import annotations

import ctypes
import os
import threading

import numpy as np

# Most frames one call may sum: 16-bit plane sums of up to 255 frames of 255
# cannot overflow, and 255 * 2**24 fits uint32.
MAX_FRAMES = 255
VECTOR_BYTES = 64

_lock = threading.Lock()
_kernel = None  # (engine, function) once compiled, False when unavailable
_tables: dict = {}


MODES = ("set", "add", "sub")


def _ir() -> str:
    """LLVM IR of ``window_sums_MODE(frames, n_frames, n_vectors, tables, top_inc, out)`` for each mode.

    ``set`` stores the sums in ``out``, ``add`` adds them to it and ``sub``
    subtracts them from it (the running sum of overlapping windows).
    """
    lines = ["declare <64 x i8> @llvm.x86.avx512.vpermi2var.qi.512(<64 x i8>, <64 x i8>, <64 x i8>)"]
    for mode in MODES:
        lines += ["", _function_ir(mode)]
    return "\n".join(lines) + "\n"


def _function_ir(mode: str) -> str:
    v8 = "<64 x i8>"
    v16 = "<32 x i16>"
    v32 = "<32 x i32>"
    lines = [
        # frames: pointer to n_frames pointers to uint8 frames; tables: 12 vectors
        # (plane p, quarter q at 4p + q); out: uint32 sums, 64 per vector.
        f"define void @window_sums_{mode}(ptr %frames, i64 %nframes, i64 %nvec, ptr %tables, i8 %topinc, ptr %out) {{",
        "entry:",
    ]
    for k in range(12):
        lines += [
            f"  %tp{k} = getelementptr {v8}, ptr %tables, i64 {k}",
            f"  %t{k} = load {v8}, ptr %tp{k}, align 64",
        ]
    lines += [
        f"  %ti0 = insertelement {v8} poison, i8 %topinc, i64 0",
        f"  %tinc = shufflevector {v8} %ti0, {v8} poison, <64 x i32> zeroinitializer",
        "  br label %vloop",
        "vloop:",
        "  %v = phi i64 [0, %entry], [%v1, %vend]",
        "  %off = mul i64 %v, 64",
        "  br label %floop",
        "floop:",
        "  %f = phi i64 [0, %vloop], [%f1, %floop]",
    ]
    for p in range(3):
        lines += [
            f"  %e{p} = phi {v16} [zeroinitializer, %vloop], [%e{p}n, %floop]",
            f"  %o{p} = phi {v16} [zeroinitializer, %vloop], [%o{p}n, %floop]",
        ]
    lines += [
        f"  %c = phi {v8} [zeroinitializer, %vloop], [%cn, %floop]",
        "  %fpp = getelementptr ptr, ptr %frames, i64 %f",
        "  %fp = load ptr, ptr %fpp, align 8",
        "  %xp = getelementptr i8, ptr %fp, i64 %off",
        f"  %x = load {v8}, ptr %xp, align 1",
        f"  %hi = icmp slt {v8} %x, zeroinitializer",
    ]
    splat255 = "splat (i16 255)"
    splat8 = "splat (i16 8)"
    for p in range(3):
        a, b, c, d = (f"%t{4 * p + q}" for q in range(4))
        lines += [
            f"  %lo{p} = call {v8} @llvm.x86.avx512.vpermi2var.qi.512({v8} {a}, {v8} %x, {v8} {b})",
            f"  %up{p} = call {v8} @llvm.x86.avx512.vpermi2var.qi.512({v8} {c}, {v8} %x, {v8} {d})",
            f"  %b{p} = select <64 x i1> %hi, {v8} %up{p}, {v8} %lo{p}",
            f"  %w{p} = bitcast {v8} %b{p} to {v16}",
            f"  %we{p} = and {v16} %w{p}, {splat255}",
            f"  %wo{p} = lshr {v16} %w{p}, {splat8}",
            f"  %e{p}n = add {v16} %e{p}, %we{p}",
            f"  %o{p}n = add {v16} %o{p}, %wo{p}",
        ]
    lines += [
        # top: 1 << 24 for the value 255 when the table reaches exactly 1 << 24.
        f"  %is255 = icmp eq {v8} %x, splat (i8 -1)",
        f"  %inc = select <64 x i1> %is255, {v8} %tinc, {v8} zeroinitializer",
        f"  %cn = add {v8} %c, %inc",
        "  %f1 = add i64 %f, 1",
        "  %fmore = icmp ult i64 %f1, %nframes",
        "  br i1 %fmore, label %floop, label %vend",
        "vend:",
        f"  %cw = bitcast {v8} %cn to {v16}",
        f"  %ce = and {v16} %cw, {splat255}",
        f"  %co = lshr {v16} %cw, {splat8}",
    ]
    for half, parts in (("e", ("e0n", "e1n", "e2n", "ce")), ("o", ("o0n", "o1n", "o2n", "co"))):
        for j, name in enumerate(parts):
            lines.append(f"  %{half}z{j} = zext {v16} %{name} to {v32}")
            if j:
                lines.append(f"  %{half}s{j} = shl {v32} %{half}z{j}, splat (i32 {8 * j})")
        lines += [
            f"  %{half}a = add {v32} %{half}z0, %{half}s1",
            f"  %{half}b = add {v32} %{half}a, %{half}s2",
            f"  %{half}sum = add {v32} %{half}b, %{half}s3",
        ]
    mask = ", ".join(f"i32 {j // 2 + (32 if j % 2 else 0)}" for j in range(64))
    lines += [
        f"  %s = shufflevector {v32} %esum, {v32} %osum, <64 x i32> <{mask}>",
        "  %op = getelementptr i32, ptr %out, i64 %off",
    ]
    if mode == "set":
        lines.append("  store <64 x i32> %s, ptr %op, align 4")
    else:
        op = "add" if mode == "add" else "sub"
        lines += [
            "  %old = load <64 x i32>, ptr %op, align 4",
            f"  %new = {op} <64 x i32> %old, %s",
            "  store <64 x i32> %new, ptr %op, align 4",
        ]
    lines += [
        "  %v1 = add i64 %v, 1",
        "  %vmore = icmp ult i64 %v1, %nvec",
        "  br i1 %vmore, label %vloop, label %exit",
        "exit:",
        "  ret void",
        "}",
    ]
    return "\n".join(lines)


def _compile():
    from llvmlite import binding as llvm

    import numba  # noqa: F401  (initialises LLVM's native target)

    features = llvm.get_host_cpu_features()
    if not (features.get("avx512bw") and features.get("avx512vbmi")):
        return False
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    module = llvm.parse_assembly(_ir())
    module.verify()
    target = llvm.Target.from_default_triple()
    machine = target.create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=features.flatten(), opt=3, codemodel="jitdefault",
    )
    engine = llvm.create_mcjit_compiler(module, machine)
    engine.finalize_object()
    signature = ctypes.CFUNCTYPE(
        None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int8, ctypes.c_void_p,
    )
    return engine, {mode: signature(engine.get_function_address(f"window_sums_{mode}")) for mode in MODES}


def available() -> bool:
    """Whether the vector kernel runs here (compiled on first call, about 0.1 s)."""
    global _kernel
    if os.environ.get("BLURSYNTH_SIMD", "1") == "0":
        return False
    with _lock:
        if _kernel is None:
            try:
                _kernel = _compile()
            except Exception:  # an LLVM without the intrinsic or the target: use the scalar kernels
                _kernel = False
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
    key = lut.tobytes()
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
    if not 1 <= len(frames) <= MAX_FRAMES or not available():
        return False
    split = plane_tables(lut)
    if split is None:
        return False
    tables, top = split
    n_vectors = out.size // VECTOR_BYTES
    if n_vectors == 0:
        return True
    for f in frames:
        if f.dtype != np.uint8 or f.ndim != 1 or f.size != out.size or not f.flags.c_contiguous:
            raise ValueError("frames must be 1-D contiguous uint8 arrays of the output's size")
    if out.dtype != np.uint32 or not out.flags.c_contiguous:
        raise ValueError("out must be a contiguous uint32 array")
    pointers = np.array([f.ctypes.data for f in frames], dtype=np.uintp)
    _kernel[1][mode](pointers.ctypes.data, len(frames), n_vectors, tables.ctypes.data, top, out.ctypes.data)
    return True
