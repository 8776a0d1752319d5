"""vsync: turn any folder into a versioned, synchronised repository."""

__version__ = "0.1.0"
