"""Reporting: comparison tables, the per-example worst case, figures, README blocks."""
