"""A hostile ``vsync serve`` whose words are terminal escapes: used as --remote-cmd.

Usage: python hostile_error_serve.py MODE serve --stdio PATH
MODE: error (reads the client's HELLO, answers with an ERROR message whose text
holds escape sequences, a carriage return, newlines, C1 and bidi controls),
stderr (writes such lines on its stderr and exits 1 without a word of protocol).
"""

from __future__ import annotations

import json
import sys

from vsync.sync import protocol

HOSTILE = (
    "\x1b]0;pwned\x07\x1b[2J\rremote says: all is fine\n"
    "vsync: push accepted \x9b31m\u202eexe.txt\x1b[0m"
)


def main() -> int:
    mode = sys.argv[1]
    if mode == "stderr":
        sys.stderr.write("\x1b[31mfirst\x07 line\n" + HOSTILE + "\n")
        sys.stderr.flush()
        return 1
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    length, _mtype = protocol.FRAME.unpack(stdin.read(protocol.FRAME.size))
    stdin.read(length)  # the client's HELLO: answered with an error
    payload = json.dumps({"code": "error", "message": HOSTILE}).encode()
    stdout.write(protocol.FRAME.pack(len(payload), protocol.ERROR) + payload)
    stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
