"""Encrypted remotes: everything that gives meaning to an opaque-object store.

Layout and bytes: docs/format.md, "Encrypted remotes"; threat model:
docs/security.md. Modules, bottom up:

- :mod:`.keys`: key files (scrypt, the wrapped master key), working keys, padding;
- :mod:`.seal`: sealed objects, chunk pack records, indexes, the branch record;
- :mod:`.remote`: an opened encrypted remote: passphrase, branch record with its
  rollback check, the index of what it holds;
- :mod:`.transfer`: push and fetch through it;
- :mod:`.create`: ``vsync init --bare --encrypted``.
"""
