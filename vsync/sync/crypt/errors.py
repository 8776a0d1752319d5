"""Errors of encrypted remotes::

UsageError (2)
+-- NoPassphrase          no passphrase given and no terminal to ask on
+-- WrongPassphrase       the passphrase opens none of the remote's key files
DamagedRepository (3)
+-- RemoteTampered        an object failed authentication or does not parse
    +-- PlainDamaged      a plain remote's object failed its BLAKE3 check
+-- RolledBack            the branch record is older than one seen before
"""

from __future__ import annotations

from vsync.errors import DamagedRepository, UsageError
from vsync.wording import plural


class NoPassphrase(UsageError):
    def __init__(self, where: str) -> None:
        super().__init__(
            f"{where} is an encrypted remote and no passphrase was given; use "
            "--password-file FILE, set VSYNC_PASSWORD, or run on a terminal"
        )


class WrongPassphrase(UsageError):
    def __init__(self, where: str, keys: int) -> None:
        super().__init__(
            f"the passphrase opens none of the {plural(keys, 'key')} of the encrypted remote "
            f"{where}; "
            "nothing was changed"
        )


class RemoteTampered(DamagedRepository):
    def __init__(self, name: str, why: str = "") -> None:
        detail = why or "changed, swapped or from another repository"
        super().__init__(
            f"the encrypted remote's object {name} failed authentication ({detail}); "
            "refusing it, nothing was changed"
        )


class RolledBack(DamagedRepository):
    def __init__(self, detail: str, kind: str = "encrypted") -> None:
        super().__init__(
            f"the {kind} remote's branch was rolled back or replaced ({detail}); "
            "refusing it, nothing was changed"
        )


class PlainDamaged(RemoteTampered):
    def __init__(self, name: str, why: str) -> None:
        DamagedRepository.__init__(
            self,
            f"the plain remote's object {name} failed its check ({why}); "
            "refusing it, nothing was changed",
        )
