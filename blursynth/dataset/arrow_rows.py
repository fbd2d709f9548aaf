"""Row dicts to an Arrow table without ``pa.array``, whose first call imports pandas.

``pa.Table.from_pylist`` asks, of every column, whether it is a pandas object, and the first
such question imports pandas: 0.3 s on a quiet machine and two on a loaded one, in every process
that writes a dataset, before its first row group. The writer builds its tables here instead,
from buffers (as :mod:`blursynth.kernelbank` builds its chunks), for the types the dataset
schemas use: strings, binaries, integers, floats, booleans, structs and lists, any of them null.
The table holds the same values as ``from_pylist``'s, so the Parquet bytes are the same.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_NUMERIC = {
    pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64,
    pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32, pa.uint64(): np.uint64,
    pa.float32(): np.float32, pa.float64(): np.float64,
}


def table_from_rows(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """``pa.Table.from_pylist(rows, schema=schema)`` for the writer's schemas, without pandas.

    Examples
    --------
    >>> schema = pa.schema([("id", pa.string()), ("v", pa.list_(pa.float32()))])
    >>> table_from_rows([{"id": "a", "v": [1.0, 2.0]}, {"id": "b", "v": None}], schema).to_pylist()
    [{'id': 'a', 'v': [1.0, 2.0]}, {'id': 'b', 'v': None}]
    """
    columns = [column([row.get(field.name) for row in rows], field.type) for field in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def column(values: list, typ: pa.DataType) -> pa.Array:
    """One column of Python values (None for null) as an Arrow array of type ``typ``."""
    n = len(values)
    valid = np.fromiter((v is not None for v in values), bool, n)
    nulls = n - int(valid.sum())
    validity = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    if typ in _NUMERIC:
        data = np.array([0 if v is None else v for v in values], dtype=_NUMERIC[typ])
        return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(data)], null_count=nulls)
    if pa.types.is_boolean(typ):
        bits = np.packbits(np.fromiter((bool(v) for v in values), bool, n), bitorder="little")
        return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(bits)], null_count=nulls)
    if pa.types.is_string(typ) or pa.types.is_binary(typ):
        parts = [b"" if v is None else (v.encode() if isinstance(v, str) else bytes(v)) for v in values]
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum([len(p) for p in parts], out=offsets[1:])
        if offsets[-1] != sum(len(p) for p in parts):  # pragma: no cover - over 2 GiB in a column
            raise OverflowError("a column chunk of over 2 GiB; write smaller row groups.")
        return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(offsets), pa.py_buffer(b"".join(parts))],
                                     null_count=nulls)
    if pa.types.is_struct(typ):
        children = [column([None if v is None else v.get(f.name) for v in values], f.type) for f in typ]
        return pa.Array.from_buffers(typ, n, [validity], null_count=nulls, children=children)
    if pa.types.is_list(typ):
        lengths = [0 if v is None else len(v) for v in values]
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum(lengths, out=offsets[1:])
        flat = [x for v in values if v is not None for x in v]
        child = column(flat, typ.value_type)
        return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(offsets)], null_count=nulls,
                                     children=[child])
    raise TypeError(f"no conversion for Arrow type {typ}; add it to blursynth.dataset.arrow_rows.")
