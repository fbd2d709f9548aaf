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
scalar kernels' sums bit for bit; the tests compare both paths. The read-out
to 8 bits (the largest level whose threshold the sum reaches) is a binary
search over the 256 thresholds, eight compares against entries picked by
``vpermd``/``vpermi2d`` from small step tables, so sums need not be stored.

Nothing here runs on a CPU without AVX-512 BW and VBMI, or when the
environment sets ``BLURSYNTH_SIMD=0``: the functions then return ``False``
and callers use their scalar kernels.
"""

from __future__ import annotations

import ctypes
import os
import threading
import warnings

import numpy as np

# Most frames one call may sum: 16-bit plane sums of up to 255 frames of 255
# cannot overflow, and 255 * 2**24 fits uint32.
MAX_FRAMES = 255
VECTOR_BYTES = 64

_lock = threading.Lock()
_kernel = None  # (engine, {name: function}) once compiled, False when unavailable
_tables: dict = {}

MODES = ("set", "add", "sub")


def _ir() -> str:
    """The module's LLVM IR: ``window_sums_MODE(frames, n_frames, n_vectors, tables, top_inc, steps, out)``
    for each mode, ``levels(sums, n_vectors, steps, out)`` and ``window_slide`` (:func:`_slide_ir`).

    ``set`` stores the sums in ``out``, ``add`` adds them to it and ``sub``
    subtracts them from it (the running sum of overlapping windows);
    ``levels`` reads the sums out to 8-bit levels in the same pass (``out``
    uint8) instead of storing them. ``steps`` (:func:`step_tables`) is read
    by the read-outs only. No pointer needs more than its element's alignment.
    """
    lines = [
        "declare <64 x i8> @llvm.x86.avx512.vpermi2var.qi.512(<64 x i8>, <64 x i8>, <64 x i8>)",
        "declare <16 x i32> @llvm.x86.avx512.permvar.si.512(<16 x i32>, <16 x i32>)",
        "declare <16 x i32> @llvm.x86.avx512.vpermi2var.d.512(<16 x i32>, <16 x i32>, <16 x i32>)",
    ]
    for mode in MODES + ("levels",):
        lines += ["", _function_ir(mode)]
    lines += ["", _levels_ir(), "", _slide_ir()]
    return "\n".join(lines) + "\n"


# Rows of the step tables (16 uint32 each) for the read-out's binary search
# over the 256 levels: bit b of the level is decided by thresholds
# T[i * 2**(b + 1) + 2**b], i < 2**(7 - b), looked up by the higher bits.
STEP_ROWS = {7: (0, 1), 6: (1, 1), 5: (2, 1), 4: (3, 1), 3: (4, 1), 2: (5, 2), 1: (7, 4), 0: (11, 8)}
N_STEP_ROWS = 19


def _splat(lanes: int, bits: int, value: int) -> str:
    """A constant vector of ``lanes`` copies of ``value`` (spelled out: older LLVMs lack ``splat``)."""
    return "<" + ", ".join([f"i{bits} {value}"] * lanes) + ">"


def _step_loads() -> list[str]:
    return [
        line
        for j in range(N_STEP_ROWS)
        for line in (f"  %qp{j} = getelementptr <16 x i32>, ptr %steps, i64 {j}",
                     f"  %q{j} = load <16 x i32>, ptr %qp{j}, align 4")
    ]


def _readout_ir(tag: str, sums: str) -> list[str]:
    """Lines computing ``%{tag}level`` (<16 x i8>): the largest k with ``T[k] <= sums`` (unsigned)."""
    v = "<16 x i32>"
    lines = []
    k = "zeroinitializer"
    for b in range(7, -1, -1):
        row, n_rows = STEP_ROWS[b]
        idx, t = f"%{tag}i{b}", f"%{tag}t{b}"
        lines.append(f"  {idx} = lshr {v} {k}, {_splat(16, 32, b + 1)}")
        if n_rows == 1:
            lines.append(f"  {t} = call {v} @llvm.x86.avx512.permvar.si.512({v} %q{row}, {v} {idx})")
        else:
            parts = []
            for j in range(n_rows // 2):
                part = f"%{tag}p{b}_{j}"
                lines.append(f"  {part} = call {v} @llvm.x86.avx512.vpermi2var.d.512("
                             f"{v} %q{row + 2 * j}, {v} {idx}, {v} %q{row + 2 * j + 1})")
                parts.append(part)
            bit = 32
            level = 0
            while len(parts) > 1:  # pick among 32-entry halves by the index's bits 5, 6
                sel = f"%{tag}s{b}_{level}"
                lines += [
                    f"  {sel}a = and {v} {idx}, {_splat(16, 32, bit)}",
                    f"  {sel} = icmp ne {v} {sel}a, zeroinitializer",
                ]
                merged = []
                for j in range(0, len(parts), 2):
                    m = f"%{tag}m{b}_{level}_{j}"
                    lines.append(f"  {m} = select <16 x i1> {sel}, {v} {parts[j + 1]}, {v} {parts[j]}")
                    merged.append(m)
                parts, bit, level = merged, bit * 2, level + 1
            lines.append(f"  {t} = or {v} {parts[0]}, zeroinitializer")
        lines += [
            f"  %{tag}c{b} = icmp uge {v} {sums}, {t}",
            f"  %{tag}a{b} = select <16 x i1> %{tag}c{b}, {v} {_splat(16, 32, 1 << b)}, {v} zeroinitializer",
            f"  %{tag}k{b} = or {v} {k}, %{tag}a{b}",
        ]
        k = f"%{tag}k{b}"
    lines.append(f"  %{tag}level = trunc {v} {k} to <16 x i8>")
    return lines


def _concat16(names: list[str], out: str) -> list[str]:
    """Four <16 x i8> values in order, as one <64 x i8> ``out``."""
    lo, hi = f"{out}lo", f"{out}hi"
    m32 = ", ".join(f"i32 {j}" for j in range(32))
    m64 = ", ".join(f"i32 {j}" for j in range(64))
    return [
        f"  {lo} = shufflevector <16 x i8> {names[0]}, <16 x i8> {names[1]}, <32 x i32> <{m32}>",
        f"  {hi} = shufflevector <16 x i8> {names[2]}, <16 x i8> {names[3]}, <32 x i32> <{m32}>",
        f"  {out} = shufflevector <32 x i8> {lo}, <32 x i8> {hi}, <64 x i32> <{m64}>",
    ]


def _split64(name: str, tag: str) -> list[str]:
    """``<64 x i32> name`` as four <16 x i32> ``%{tag}0`` .. ``%{tag}3``."""
    return [
        f"  %{tag}{q} = shufflevector <64 x i32> {name}, <64 x i32> poison, <16 x i32> "
        f"<{', '.join(f'i32 {16 * q + j}' for j in range(16))}>"
        for q in range(4)
    ]


def _levels_ir() -> str:
    """``levels(sums, n_vectors, steps, out)``: the read-out of uint32 sums to 8-bit levels."""
    lines = [
        "define void @levels(ptr %sums, i64 %nvec, ptr %steps, ptr %out) {",
        "entry:",
        *_step_loads(),
        "  br label %vloop",
        "vloop:",
        "  %v = phi i64 [0, %entry], [%v1, %vloop]",
        "  %off = mul i64 %v, 64",
        "  %sp = getelementptr i32, ptr %sums, i64 %off",
        "  %s = load <64 x i32>, ptr %sp, align 4",
        *_store_levels("%s"),
    ]
    return "\n".join(lines + _LOOP_END)


def _table_loads(*, steps: bool) -> list[str]:
    """Entry-block lines loading the 12 plane tables (``%t0`` ..), the top increment and the steps."""
    v8 = "<64 x i8>"
    lines = _step_loads() if steps else []
    for k in range(12):
        lines += [
            f"  %tp{k} = getelementptr {v8}, ptr %tables, i64 {k}",
            f"  %t{k} = load {v8}, ptr %tp{k}, align 1",
        ]
    return lines + [
        f"  %ti0 = insertelement {v8} poison, i8 %topinc, i64 0",
        f"  %tinc = shufflevector {v8} %ti0, {v8} poison, <64 x i32> zeroinitializer",
    ]


def _plane_sums_ir(tag: str, frames: str, count: str, before: str) -> list[str]:
    """Lines ending block ``before``: the table sums over ``count`` frames at vector ``%off``.

    The frames are ``count`` pointers at ``frames``; with ``count == 0`` the
    sum is zero. The lines end in block ``{tag}done`` holding ``%{tag}sum``
    (<64 x i32>, the 64 values in order).
    """
    v8, v16, v32 = "<64 x i8>", "<32 x i16>", "<32 x i32>"
    splat255, splat8 = _splat(32, 16, 255), _splat(32, 16, 8)
    acc = [f"e{p}" for p in range(3)] + [f"o{p}" for p in range(3)]
    lines = [
        f"  %{tag}any = icmp ne i64 {count}, 0",
        f"  br i1 %{tag}any, label %{tag}loop, label %{tag}done",
        f"{tag}loop:",
        f"  %{tag}f = phi i64 [0, %{before}], [%{tag}f1, %{tag}loop]",
        *(f"  %{tag}{a} = phi {v16} [zeroinitializer, %{before}], [%{tag}{a}n, %{tag}loop]" for a in acc),
        f"  %{tag}c = phi {v8} [zeroinitializer, %{before}], [%{tag}cn, %{tag}loop]",
        f"  %{tag}fpp = getelementptr ptr, ptr {frames}, i64 %{tag}f",
        f"  %{tag}fp = load ptr, ptr %{tag}fpp, align 8",
        f"  %{tag}xp = getelementptr i8, ptr %{tag}fp, i64 %off",
        f"  %{tag}x = load {v8}, ptr %{tag}xp, align 1",
        f"  %{tag}hi = icmp slt {v8} %{tag}x, zeroinitializer",
    ]
    for p in range(3):
        a, b, c, d = (f"%t{4 * p + q}" for q in range(4))
        t = f"%{tag}"
        lines += [
            f"  {t}lo{p} = call {v8} @llvm.x86.avx512.vpermi2var.qi.512({v8} {a}, {v8} {t}x, {v8} {b})",
            f"  {t}up{p} = call {v8} @llvm.x86.avx512.vpermi2var.qi.512({v8} {c}, {v8} {t}x, {v8} {d})",
            f"  {t}b{p} = select <64 x i1> {t}hi, {v8} {t}up{p}, {v8} {t}lo{p}",
            f"  {t}w{p} = bitcast {v8} {t}b{p} to {v16}",
            f"  {t}we{p} = and {v16} {t}w{p}, {splat255}",
            f"  {t}wo{p} = lshr {v16} {t}w{p}, {splat8}",
            f"  {t}e{p}n = add {v16} {t}e{p}, {t}we{p}",
            f"  {t}o{p}n = add {v16} {t}o{p}, {t}wo{p}",
        ]
    lines += [
        # top: 1 << 24 for the value 255 when the table reaches exactly 1 << 24.
        f"  %{tag}is255 = icmp eq {v8} %{tag}x, {_splat(64, 8, -1)}",
        f"  %{tag}inc = select <64 x i1> %{tag}is255, {v8} %tinc, {v8} zeroinitializer",
        f"  %{tag}cn = add {v8} %{tag}c, %{tag}inc",
        f"  %{tag}f1 = add i64 %{tag}f, 1",
        f"  %{tag}more = icmp ult i64 %{tag}f1, {count}",
        f"  br i1 %{tag}more, label %{tag}loop, label %{tag}done",
        f"{tag}done:",
        *(f"  %{tag}{a}d = phi {v16} [zeroinitializer, %{before}], [%{tag}{a}n, %{tag}loop]" for a in acc),
        f"  %{tag}cd = phi {v8} [zeroinitializer, %{before}], [%{tag}cn, %{tag}loop]",
        f"  %{tag}cw = bitcast {v8} %{tag}cd to {v16}",
        f"  %{tag}ce = and {v16} %{tag}cw, {splat255}",
        f"  %{tag}co = lshr {v16} %{tag}cw, {splat8}",
    ]
    for half, parts in (("e", ("e0d", "e1d", "e2d", "ce")), ("o", ("o0d", "o1d", "o2d", "co"))):
        h = f"%{tag}{half}"
        for j, name in enumerate(parts):
            lines.append(f"  {h}z{j} = zext {v16} %{tag}{name} to {v32}")
            if j:
                lines.append(f"  {h}s{j} = shl {v32} {h}z{j}, {_splat(32, 32, 8 * j)}")
        lines += [
            f"  {h}a = add {v32} {h}z0, {h}s1",
            f"  {h}b = add {v32} {h}a, {h}s2",
            f"  {h}sum = add {v32} {h}b, {h}s3",
        ]
    mask = ", ".join(f"i32 {j // 2 + (32 if j % 2 else 0)}" for j in range(64))
    return lines + [f"  %{tag}sum = shufflevector {v32} %{tag}esum, {v32} %{tag}osum, <64 x i32> <{mask}>"]


def _store_levels(value: str) -> list[str]:
    """Read ``value`` (<64 x i32> sums) out to 64 levels and store them at ``%out + %off``."""
    lines = _split64(value, "sq")
    for q in range(4):
        lines += _readout_ir(f"r{q}", f"%sq{q}")
    return lines + _concat16([f"%r{q}level" for q in range(4)], "%lv") + [
        "  %lvp = getelementptr i8, ptr %out, i64 %off",
        "  store <64 x i8> %lv, ptr %lvp, align 1",
    ]


_LOOP_END = [
    "  %v1 = add i64 %v, 1",
    "  %vmore = icmp ult i64 %v1, %nvec",
    "  br i1 %vmore, label %vloop, label %exit",
    "exit:",
    "  ret void",
    "}",
]


def _function_ir(mode: str) -> str:
    lines = [
        # frames: pointer to n_frames pointers to uint8 frames; tables: 12 vectors
        # (plane p, quarter q at 4p + q); out: uint32 sums, 64 per vector (uint8
        # levels for mode 'levels').
        f"define void @window_sums_{mode}(ptr %frames, i64 %nframes, i64 %nvec, ptr %tables, i8 %topinc, "
        "ptr %steps, ptr %out) {",
        "entry:",
        *_table_loads(steps=mode == "levels"),
        "  br label %vloop",
        "vloop:",
        "  %v = phi i64 [0, %entry], [%v1, %sdone]",
        "  %off = mul i64 %v, 64",
        *_plane_sums_ir("s", "%frames", "%nframes", "vloop"),
    ]
    if mode == "levels":
        # The read-out of the window's sums, without storing them: 64 output bytes per vector.
        lines += _store_levels("%ssum")
    else:
        lines.append("  %op = getelementptr i32, ptr %out, i64 %off")
    if mode == "set":
        lines.append("  store <64 x i32> %ssum, ptr %op, align 4")
    elif mode in ("add", "sub"):
        op = "add" if mode == "add" else "sub"
        lines += [
            "  %old = load <64 x i32>, ptr %op, align 4",
            f"  %new = {op} <64 x i32> %old, %ssum",
            "  store <64 x i32> %new, ptr %op, align 4",
        ]
    return "\n".join(lines + _LOOP_END)


def _slide_ir() -> str:
    """``window_slide(adds, n_adds, subs, n_subs, n_vectors, tables, top_inc, steps, sums, out)``.

    One pass for a window that shares frames with the previous one: the
    entering frames' table values are added to ``sums`` and the leaving
    frames' subtracted, the new sums stored, and read out to ``out``.
    """
    lines = [
        "define void @window_slide(ptr %adds, i64 %nadds, ptr %subs, i64 %nsubs, i64 %nvec, ptr %tables, "
        "i8 %topinc, ptr %steps, ptr %sums, ptr %out) {",
        "entry:",
        *_table_loads(steps=True),
        "  br label %vloop",
        "vloop:",
        "  %v = phi i64 [0, %entry], [%v1, %ldone]",
        "  %off = mul i64 %v, 64",
        *_plane_sums_ir("a", "%adds", "%nadds", "vloop"),
        *_plane_sums_ir("l", "%subs", "%nsubs", "adone"),
        "  %sp = getelementptr i32, ptr %sums, i64 %off",
        "  %old = load <64 x i32>, ptr %sp, align 4",
        "  %grown = add <64 x i32> %old, %asum",
        "  %new = sub <64 x i32> %grown, %lsum",
        "  store <64 x i32> %new, ptr %sp, align 4",
        *_store_levels("%new"),
    ]
    return "\n".join(lines + _LOOP_END)


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
    module = llvm.parse_assembly(_ir())
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
        As :func:`blursynth.video.encode_thresholds` makes them, all below 2**32.

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
    :func:`blursynth.video.LinearAverager.result` reads out of the same sums.
    Arguments as :func:`window_sums`, with ``out`` uint8.
    """
    return _run_window("levels", frames, lut, steps, out, np.uint8)


def window_slide(adds, subs, lut: np.ndarray, steps: np.ndarray, sums: np.ndarray, out: np.ndarray) -> bool:
    """Move a running sum to the next window and read it out, in one pass; False if not run.

    For the leading whole vectors: ``sums[i] += sum(lut[f[i]] for f in adds)
    - sum(lut[f[i]] for f in subs)`` (uint32, modulo 2**32), then ``out[i]``
    is the largest ``k`` with ``T[k] <= sums[i]`` for ``steps =
    step_tables(T)``: what adding, subtracting and
    :func:`blursynth.video.LinearAverager.result` do in three passes.

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
