#!/usr/bin/env bash
# A short tour of vsync in a temporary folder: `make demo` runs it.
#
# It makes a folder with a 200 MiB binary file and a few text files, commits
# it, edits both kinds of file (a 12-byte insertion in the middle of the big
# file, a line added to a note), commits again, shows the history, restores
# the big file's previous version (checksums show it is back), prints an
# old version of a note, and compares the store's size to the folder's.
#
# Every command is printed before it runs. The folder is removed at the end;
# set VSYNC_DEMO_KEEP=1 to keep it and look around.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$here/.venv/bin:$PATH"
export VSYNC_AUTHOR_NAME="${VSYNC_AUTHOR_NAME:-Demo User}"
export VSYNC_AUTHOR_EMAIL="${VSYNC_AUTHOR_EMAIL:-demo@example.com}"

if [ -t 1 ]; then bold=$'\e[1m' dim=$'\e[2m' off=$'\e[0m'; else bold="" dim="" off=""; fi

demo=$(mktemp -d "${TMPDIR:-/tmp}/vsync-demo.XXXXXX")
if [ "${VSYNC_DEMO_KEEP:-0}" = 1 ]; then
    trap 'echo; echo "${dim}demo folder kept: $demo${off}"' EXIT
else
    trap 'rm -rf "$demo"' EXIT
fi

say() { printf '\n%s# %s%s\n' "$dim" "$*" "$off"; }
run() {
    printf '%s$ %s%s\n' "$bold" "$1" "$off"
    eval "$1"
}

cd "$demo"
mkdir -p project/notes
cd project

say "A folder with a 200 MiB binary file (pseudo-random, so it neither compresses nor dedups) and some notes"
run "python -c 'import random; r = random.Random(2024); open(\"video.bin\", \"wb\").write(b\"\".join(r.randbytes(4 << 20) for _ in range(50)))'"
run "printf 'buy film\\nfix the bike\\n' > notes/todo.txt"
run "printf '# Trip\\nDay 1: arrive\\n' > notes/trip.md"
run "ls -l video.bin notes"

say "Make the folder a repository and snapshot it"
run "vsync init"
run "vsync status"
run "vsync commit -m 'First snapshot'"
run "du -sb .vsync"
run "sha256sum video.bin | tee ../before.sha256"

say "Insert 12 bytes in the middle of the big file and add a line to a note"
run "python -c 'd = open(\"video.bin\", \"rb\").read(); h = len(d) // 2; open(\"video.bin\", \"wb\").write(d[:h] + b\"hello, vsync\" + d[h:])'"
run "echo 'call the bank' >> notes/todo.txt"
run "vsync status"

say "Commit again: content-defined chunking stores only the few chunks around the insertion"
run "vsync commit -m 'Edit video and todo list'"
run "du -sb .vsync"
run "vsync log --oneline"

say "Bring back the previous version of the big file"
run "sha256sum video.bin"
run "vsync restore video.bin --source HEAD~1"
run "sha256sum -c ../before.sha256"
run "vsync status"

say "Read an old version of a file without touching the folder"
run "vsync show HEAD~1:notes/todo.txt"

say "Two versions of a 200 MiB file, and what they cost on disk"
run "du -sb --exclude=.vsync ."
run "du -sb .vsync"
store=$(du -sb .vsync | cut -f1)
folder=$(du -sb --exclude=.vsync . | cut -f1)
printf '\n%sThe store holds every version for %s times the size of the folder.%s\n' \
    "$bold" "$(awk "BEGIN { printf \"%.3f\", $store / $folder }")" "$off"
