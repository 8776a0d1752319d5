"""The PNG plot of commit throughput by file size (matplotlib, from the ``bench`` extra).

:func:`commit_throughput` draws vsync, git and restic's throughput (file size
over median time) on incompressible files of each measured size, with the
min-max of the runs as error bars, into docs/ (a full run) or bench/results/
(otherwise). Returns the file's name (the Markdown beside it links it), or None when
matplotlib is not installed.
"""

from __future__ import annotations

from pathlib import Path

from measure import MIB, Series

BENCH_DIR = Path(__file__).resolve().parent
DOCS = BENCH_DIR.parent / "docs"
NAME = "benchmarks-commit-throughput.png"
COLOURS = {"vsync": "#1f77b4", "git": "#d62728", "restic": "#2ca02c"}


def commit_throughput(by_size: dict[int, dict[str, Series]], to_docs: bool) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot skipped: matplotlib is not installed (pip install -e '.[bench]')")
        return None
    sizes = sorted(by_size)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for tool, colour in COLOURS.items():
        xs, ys, lo, hi = [], [], [], []
        for size in sizes:
            s = by_size[size].get(tool)
            if s is None or not s.runs:
                continue
            mib = size / MIB
            med = mib / s.seconds
            xs.append(mib)
            ys.append(med)
            lo.append(med - mib / max(r.seconds for r in s.runs))
            hi.append(mib / min(r.seconds for r in s.runs) - med)
        ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=tool, color=colour)
    ax.set_xscale("log", base=2)
    ax.set_xticks([s / MIB for s in sizes], [f"{s // MIB} MiB" for s in sizes])
    ax.set_xlabel("file size (incompressible)")
    ax.set_ylabel("MiB/s (size / median time)")
    ax.set_title(
        "Commit a new file into an empty repository: vsync commit, git add+commit, restic backup"
    )
    ax.title.set_fontsize(9)
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    out_dir = DOCS if to_docs else BENCH_DIR / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / NAME)
    plt.close(fig)
    # docs/benchmarks.md links the file beside it; results/*.md the one beside them
    return NAME
