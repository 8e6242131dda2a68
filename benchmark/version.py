"""robbench's version, recorded in every result it writes."""

__version__ = "0.2.0"
