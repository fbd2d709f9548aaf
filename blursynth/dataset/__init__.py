"""The dataset format and output folders: schema, writer, executors, reader, verifier, export, claims.

Modules: :mod:`.schema` (format, schemas, rows, kinds), :mod:`.writer`
(:func:`write_dataset`), :mod:`.executors` (local pool, Ray, progress),
:mod:`.reader` (:class:`PairDataset`, :func:`load_manifest`), :mod:`.verify`,
:mod:`.info`, :mod:`.export`, :mod:`.preview`, :mod:`.outputs` (:func:`claim`
and atomic writes). The names below are loaded on first use, so importing
``blursynth.dataset.outputs`` does not import pyarrow.
"""

from __future__ import annotations

from .._lazy import lazy_names

_PUBLIC = {
    "PAIR_SCHEMA": "schema", "ARRAY_TYPE": "schema", "IMAGE_TYPE": "schema", "pair_row": "schema",
    "array_struct": "schema", "struct_array": "schema", "register_kind": "schema",
    "with_format_metadata": "schema", "GT_FRAMES_PAIR_SCHEMA": "schema", "pair_source": "schema",
    "write_dataset": "writer", "WriteOptions": "writer",
    "Executor": "executors", "report_progress": "executors",
    "PairDataset": "reader", "ShardedTable": "reader", "load_manifest": "reader", "decode_pair_row": "reader",
    "verify_dataset": "verify",
    "dataset_info": "info",
    "export_png": "export",
    "claim": "outputs", "OutputKind": "outputs",
}

__all__ = sorted(_PUBLIC)

__getattr__, __dir__ = lazy_names(__name__, _PUBLIC, globals())
