"""git's file modes, as the git database stores them in trees (re-exported by
:mod:`vsync.model.gitdb.types`; here alone so that a clean status, which needs
only these, loads nothing else of the database)."""

MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_LINK = 0o120000
MODE_TREE = 0o040000
MODE_GITLINK = 0o160000  # a submodule entry; vsync never writes one and skips foreign ones
