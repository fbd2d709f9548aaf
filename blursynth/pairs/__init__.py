"""The ways of making pairs: each has its Settings, a plan, rows for the writer and rebuild_pair(row, sources)."""
