"""Numeric operations: arrays in, arrays out (no paths, no pyarrow, no CLI)."""
