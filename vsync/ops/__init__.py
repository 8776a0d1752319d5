"""Operations: commit, status, checkout, restore, log, diff, show, fsck, gc.

Each takes a repository plus callbacks and returns a result dataclass; none
prints. The CLI renders results.
"""
