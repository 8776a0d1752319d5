"""Run vsync's benchmarks: ``make bench`` (full) or ``make bench-quick``.

    .venv/bin/python bench/run.py [--quick] [--only commit|push|chunking]

A full run rewrites its sections of docs/benchmarks.md ("Commit throughput
(issue 2)", "Push over SSH (issue 3)") and the measured tables of
docs/format.md ("Chunking parameters"); a quick run (64 MiB and 32 MiB
inputs) writes only under bench/results/. Inputs are generated once into
bench/data/ (gitignored) and reused. The push benchmark starts a private sshd
on 127.0.0.1 and installs rsync (apt-get) only if it is missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import chunk_params
import commit_throughput
import push_ssh

SUITES = ("commit", "push", "chunking")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="64 MiB inputs; docs left unchanged")
    p.add_argument("--only", choices=SUITES, action="append", help="run only this suite")
    args = p.parse_args(argv)
    suites = args.only or list(SUITES)
    if "commit" in suites:
        commit_throughput.main(quick=args.quick, update_docs=not args.quick)
    if "push" in suites:
        push_ssh.main(quick=args.quick, update_docs=not args.quick)
    if "chunking" in suites:
        chunk_params.main(quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
