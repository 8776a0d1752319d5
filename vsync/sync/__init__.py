"""Sync: moving snapshots between copies of a folder.

- ``url``: remote URLs (``ssh://``, scp-like ``host:path``, local paths);
- ``transport``: the byte pipe to ``vsync serve --stdio`` (local subprocess);
- ``ssh``: the same pipe through an SSH session (the only asyncssh user);
- ``errors``: connection, host-key and URL errors;
- ``protocol``, ``client``, ``server``, ``transfer``: the wire protocol and
  the push/fetch/pull logic that runs over a transport.
"""
