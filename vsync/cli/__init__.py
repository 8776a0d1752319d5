"""Command line: argument parsing, exit codes, output formatting."""
