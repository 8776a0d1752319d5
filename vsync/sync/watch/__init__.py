"""``vsync watch``: keep a folder in step with a remote as its files change.

One module per job: :mod:`.events` (folder events through watchfiles, the settle
rule), :mod:`.writers` (files still open for writing or growing), :mod:`.notify`
(the remote's REF_MOVED notifications, client side), :mod:`.serve` (the same,
server side), :mod:`.backoff`, :mod:`.lock` (one watcher per folder),
:mod:`.cycle` (commit, pull, push), :mod:`.state` (what the user is shown) and
:mod:`.loop` (the watcher). The fsmonitor, which answers status and commit's
"what changed?": :mod:`.inotify_tree` (a recursive inotify watch that says when it
lost events), :mod:`.monitor` (the journal of changed paths and its tokens),
:mod:`.query_server` (the socket) and :mod:`.fsmon` (both, in a watcher or alone).
Nothing here imports watchfiles at package import: the server uses :mod:`.serve`.
"""
