"""User interface pieces: progress lines, conflict shell, history browser."""
