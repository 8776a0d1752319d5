"""``vsync watch``: keep a folder in step with a remote as its files change.

One module per job: :mod:`.events` (folder events through watchfiles, the settle
rule), :mod:`.writers` (files still open for writing or growing), :mod:`.notify`
(the remote's REF_MOVED notifications, client side), :mod:`.serve` (the same,
server side), :mod:`.backoff`, :mod:`.lock` (one watcher per folder),
:mod:`.cycle` (commit, pull, push), :mod:`.guard` (the mass-change guard's one
place), :mod:`.state` (what the user is shown) and :mod:`.loop` (the watcher).
Nothing here imports watchfiles at package import: the server uses :mod:`.serve`.
"""
