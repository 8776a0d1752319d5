#!/usr/bin/env bash
# The session docs/user-guide.md shows: every example in the guide comes from a run of this script.
#
# Usage:
#     scripts/guide_session.sh            run the session, write the transcripts
#     scripts/guide_session.sh --write    ... and paste them into docs/user-guide.md
#
# It plays two machines in /tmp/vsync-guide (removed first; the guide shows
# these paths): laptop/photos (VSYNC_HOST=laptop), desktop/photos (VSYNC_HOST=desktop)
# and usb/photos.vsync, a bare repository standing in for a USB drive or a
# server, used as a path remote. If OpenSSH's sshd is installed, the last part
# starts one on 127.0.0.1 (its own host key, authorized_keys and client HOME
# under /tmp/vsync-guide/ssh) to run the SSH examples: a forced command with
# --restrict-to, an unknown and a changed host key. The sshd is stopped at the
# end.
#
# Each example is one transcript, /tmp/vsync-guide/out/NAME.txt: "$ command" lines
# followed by what the command printed (stdout and stderr, in order). On a
# terminal vsync redraws a progress line; examples run under script(1) keep
# that line's last state. In the guide a transcript is a fenced block opened
# by "```console session=NAME"; --write replaces its content with the new
# transcript (a transcript that was not produced, such as the SSH ones without
# sshd, is left as it is).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=/tmp/vsync-guide
out="$root/out"
guide="$here/docs/user-guide.md"
write=0
[ "${1:-}" = --write ] && write=1

export PATH="$here/.venv/bin:$PATH"
export PYTHONUNBUFFERED=1 # stdout and stderr interleave as on a terminal
export TZ=UTC LC_ALL=C.UTF-8
unset VSYNC_LOOPBACK_ONLY VSYNC_LOCK_TIMEOUT VSYNC_MAX_FILE_SIZE

rm -rf "$root"
mkdir -p "$out" "$root/laptop/photos" "$root/desktop" "$root/usb"

# -- recording ---------------------------------------------------------------------------

script_name=guide_session.sh
. "$here/scripts/transcript.sh"
trap 'echo "guide_session.sh: stopped at line $LINENO" >&2' ERR

# run_tty CMD: as run, on a pseudo-terminal, keeping each redrawn line's last state.
run_tty() {
    printf '$ %s\n' "$1" >>"$current"
    local raw="$root/tty.out"
    if script -qefc "$1" /dev/null </dev/null >"$raw" 2>&1; then last_rc=0; else last_rc=$?; fi
    [ "$last_rc" = 0 ] || die "'$1' exited with $last_rc (see $raw)"
    python3 - "$raw" >>"$current" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace", newline="").read().replace("\r\n", "\n")
for line in text.split("\n")[: -1 if text.endswith("\n") else None]:
    print(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line.split("\r")[-1]))
EOF
}

# quietly CMD: run without recording (preparation the guide describes in words).
quietly() { eval "$1" >/dev/null 2>&1; }

laptop() { export VSYNC_HOST=laptop; cd "$root/laptop/photos"; }
desktop() { export VSYNC_HOST=desktop; cd "$root/desktop/photos"; }

# -- stand-ins for a camera and an editor (the guide names them) -------------------------

# poke FILE [TEXT]: insert TEXT (default: "edited on <host>") in the middle of FILE.
poke() {
    python3 -c 'import sys; p, t = sys.argv[1], sys.argv[2].encode()
d = open(p, "rb").read(); h = len(d) // 2; open(p, "wb").write(d[:h] + t + d[h:])' \
        "$1" "${2:-edited on $VSYNC_HOST}"
}
export -f camera poke # run_tty's commands run in a fresh shell

# -- 0. who is working -------------------------------------------------------------------

block env
run 'export VSYNC_AUTHOR_NAME="Ada Lovelace" VSYNC_AUTHOR_EMAIL=ada@example.com'
run 'export VSYNC_HOST=laptop'

laptop
mkdir -p lisbon .cache
camera lisbon/IMG_0001.jpg 420
camera lisbon/IMG_0002.jpg 380
camera lisbon/blurry.jpg 350
camera lisbon/tram.mp4 $((48 * 1024))
cp lisbon/IMG_0001.jpg cover.jpg
printf '# Lisbon\n\n- Day 1: Alfama, tram 28\n- Day 2: Belém\n- Day 3: Sintra\n' >notes.md
camera .cache/thumbs.db 64
echo "half-written" >notes.md.tmp

# -- 2. set up ---------------------------------------------------------------------------

block setup-folder
run 'cd /tmp/vsync-guide/laptop/photos'
run 'find . -type f -printf "%9s  %p\n" | sort -k2'

block init
run 'vsync init'
run 'ls .vsync'

block ignore
run "cat > .vsyncignore <<'EOF'
# editor leftovers and the viewer's thumbnail cache
*.tmp
.cache/
EOF"
run 'vsync status'

block first-commit
run_tty 'vsync commit -m "Lisbon, first pictures"'
run 'vsync status'

block porcelain
run 'echo "- Day 4: Cascais" >> notes.md'
run 'rm lisbon/blurry.jpg'
run 'ln -sf lisbon/IMG_0001.jpg cover.jpg'
run 'camera lisbon/IMG_0003.jpg'
run 'vsync status'
run 'vsync status --porcelain'
run 'vsync commit -m "Day 4, cover is a link, blurry photo gone"'

block portability
run 'echo "Day 6" > "plan: day 6.txt"'
run 'echo "drafts" > aux.txt'
run 'echo "notes" > Notes.md'
run 'vsync status'
run 'git config -f .vsync/config portability.strict true'
fails 'vsync commit -m "Day 6 plan"'
run 'git config -f .vsync/config --unset portability.strict'
run 'rm "plan: day 6.txt" aux.txt Notes.md'

block chunks
run 'poke lisbon/tram.mp4 "chapter: the tram turns"'
run 'vsync status --porcelain'
run 'vsync commit -m "Chapter mark in the tram video"'
run 'du -sh --exclude=.vsync .'
run 'du -sh .vsync'

# -- 3. two machines ---------------------------------------------------------------------

block bare
run 'vsync init --bare /tmp/vsync-guide/usb/photos.vsync'
run 'vsync remote add origin /tmp/vsync-guide/usb/photos.vsync'
run 'vsync remote list -v'
run_tty 'vsync push'

block push-create
run 'vsync push --create /tmp/vsync-guide/backup/photos.vsync'

export VSYNC_HOST=desktop
cd "$root/desktop"
block clone
run 'cd /tmp/vsync-guide/desktop'
run_tty 'vsync clone /tmp/vsync-guide/usb/photos.vsync photos'
run 'cd photos'
run 'vsync log --oneline'

desktop
block desktop-commit
run 'sed -i "s/- Day 2: Belém/- Day 2: Belém, pastéis de nata/" notes.md'
run 'vsync commit -m "Day 2 notes"'
run 'vsync push --porcelain'

laptop
block fetch
run 'vsync fetch'
run 'vsync log --oneline -n 2 --rev origin/main'
run 'vsync pull'

desktop
block desktop-photo
run 'camera lisbon/IMG_0004.jpg'
run 'vsync commit -m "Photo from the tram"'
run 'vsync push'

laptop
block rejected
run 'sed -i "s/- Day 3: Sintra/- Day 3: Sintra, Pena palace/" notes.md'
run 'vsync commit -m "Day 3 notes"'
fails 'vsync push'
rc

# -- 4. edits on both machines -----------------------------------------------------------

block clean-merge
run 'vsync sync'
run 'vsync log --oneline -n 5'

desktop
quietly 'vsync sync'

# both machines change the same line of notes.md and the same photo
block desktop-conflict-side
run 'sed -i "s/- Day 4: Cascais/- Day 4: Cascais, beach all afternoon/" notes.md'
run 'poke lisbon/IMG_0001.jpg'
run 'vsync sync'

laptop
block laptop-conflict-side
run 'sed -i "s/- Day 4: Cascais/- Day 4: Cascais, rain, so the aquarium/" notes.md'
run 'poke lisbon/IMG_0001.jpg'
run 'vsync commit -m "Day 4 notes, brighter cover photo"'

block dry-run
run 'vsync pull --dry-run'

block conflict
fails 'vsync sync'
rc
run 'vsync status'

block markers
run 'cat notes.md'
run 'ls -l lisbon'

block resolve
fails 'vsync commit -m "Merge"'
rc
run 'vsync resolve --list'
run 'vsync resolve lisbon/IMG_0001.jpg --theirs'
run "cat > notes.md <<'EOF'
# Lisbon

- Day 1: Alfama, tram 28
- Day 2: Belém, pastéis de nata
- Day 3: Sintra, Pena palace
- Day 4: Cascais, beach, then rain, so the aquarium
EOF"
run 'vsync resolve notes.md --mark'
run 'vsync commit -m "Merge the desktop'"'"'s Day 4"'
run 'vsync push'

desktop
quietly 'vsync pull'
# second conflict: the same photo edited on both, a photo kept on one machine, deleted on the other
block abort-desktop
run 'poke lisbon/IMG_0002.jpg'
run 'rm lisbon/IMG_0003.jpg'
run 'vsync sync -q'

laptop
block abort
run 'poke lisbon/IMG_0002.jpg'
run 'poke lisbon/IMG_0003.jpg'
run 'vsync commit -q -m "Retouch IMG_0002 and IMG_0003"'
fails 'vsync pull'
rc
run 'vsync merge --abort'
run 'vsync status'

block merge-again
fails 'vsync merge origin/main'
rc
run 'vsync resolve lisbon/IMG_0002.jpg --both'
run 'vsync resolve lisbon/IMG_0003.jpg --ours'
run 'vsync status --porcelain'
run 'vsync commit -m "Merge: keep both IMG_0002, keep IMG_0003"'
run 'vsync push -q'

# -- 5. history --------------------------------------------------------------------------

block log
run 'vsync log -n 1'
run 'vsync log --oneline -n 4'
run 'vsync log --oneline notes.md'

block diff
run 'echo "- Day 5: fly home" >> notes.md'
run 'vsync diff'
run 'vsync commit -q -m "Day 5"'
run 'vsync diff HEAD~1 HEAD -- notes.md'
run 'vsync diff HEAD~2 HEAD~1'
run 'vsync diff --stat HEAD~2 HEAD'

block show
run 'vsync show HEAD~4:notes.md'
run 'vsync show HEAD~1'

block show-relative
run 'cd lisbon'
run 'vsync show HEAD:notes.md | head -n 1'
run 'vsync show HEAD:./IMG_0001.jpg | wc -c'
run 'vsync show HEAD:../notes.md | head -n 1'
run 'cd ..'

sleep 1.1
stamp=$(date '+%Y-%m-%d %H:%M:%S')
sleep 1.1
quietly 'echo "- Day 6: unpacking" >> notes.md'
quietly 'vsync commit -m "Day 6"'
first=$(vsync log --oneline | tail -n 1 | cut -c1-7)
block revisions
run 'vsync log --oneline -n 1 --rev HEAD~2'
run "vsync show $first:notes.md"
run 'vsync log --oneline -n 1 --rev origin/main'
run "vsync log --oneline -n 1 --rev 'HEAD@{1}'"
run "vsync log --oneline -n 1 --rev 'HEAD@{$stamp}'"
fails "vsync log --oneline -n 1 --rev 'HEAD@{yesterday}'"

block restore
run 'vsync restore notes.md --source HEAD~5'
run 'tail -n 2 notes.md'
run 'vsync status --porcelain'
run 'vsync restore notes.md'
run 'vsync status'

deleted=$(vsync log --oneline -- lisbon/blurry.jpg | head -n 1 | cut -c1-10)
block restore-deleted
run 'vsync log --oneline -- lisbon/blurry.jpg'
run "vsync restore lisbon/blurry.jpg --source $deleted~1"
run 'vsync status --porcelain'
run 'rm lisbon/blurry.jpg'

block find-version
run 'vsync log --oneline -n 3 notes.md'
run 'vsync history notes.md'

block at-version
run "vsync show --at '$stamp' notes.md"
run "vsync restore notes.md --at '$stamp'"
run 'tail -n 2 notes.md'
run 'vsync status --porcelain'
run 'vsync restore notes.md'

block restore-as
run "vsync restore notes.md --source $first --as notes-day1.md"
run 'cat notes-day1.md'
run 'rm notes-day1.md'

block log-deleted
run 'vsync log --deleted'

block follow
run 'mv lisbon/IMG_0004.jpg lisbon/tram-window.jpg'
run 'vsync commit -q -m "A better name for the tram photo"'
run 'vsync log --oneline lisbon/tram-window.jpg'
run 'vsync log --oneline --follow lisbon/tram-window.jpg'
run 'vsync log -n 1 --follow lisbon/tram-window.jpg'
quietly 'vsync push'

block checkout
run "vsync checkout $first"
run 'vsync status'
run 'vsync log --oneline -n 1'
run 'vsync checkout HEAD'
run 'vsync status'

block json
run 'echo "- Day 7: sort the photos" > ideas.md'
run 'vsync status --json'
run 'vsync log --json -n 1 | python3 -m json.tool'
run 'vsync history --json notes.md | python3 -c "import json, sys; h = json.load(sys.stdin); print(len(h[\"versions\"]), h[\"versions\"][0][\"size\"])"'
run 'vsync diff --stat --json HEAD~1 HEAD'
run 'vsync fetch --json'
run 'rm ideas.md'

# -- 6. undo -----------------------------------------------------------------------------

desktop
quietly 'vsync pull'
block mass-change
run 'mv lisbon ../lisbon-moved'
fails 'vsync sync'
rc
run 'mv ../lisbon-moved lisbon'
run 'vsync status'

block undo-desktop
run 'rm lisbon/IMG_0001.jpg lisbon/IMG_0002.jpg'
run 'sed -i "/- Day 1/d" notes.md'
run 'vsync sync -q'

laptop
block bad-pull
run 'vsync pull'
run 'ls lisbon'

block reflog
run 'vsync reflog -n 5'

block undo
run 'vsync undo'
run 'ls lisbon'
run 'vsync status'
run 'vsync log --oneline -n 2'

block redo
run 'vsync undo'
run 'ls lisbon'
run 'vsync log --oneline -n 2'

block revert-to
run 'vsync revert-to HEAD~1'
run 'ls lisbon'
run 'vsync log --oneline -n 3'
run 'vsync reflog -n 4'
run 'vsync push -q'

# -- 7. looking after it -----------------------------------------------------------------

block fsck
run_tty 'vsync fsck'
run_tty 'vsync gc'

block hooks
run 'ls .vsync/hooks'
run 'cp .vsync/hooks/pre-commit.sample .vsync/hooks/pre-commit'
run 'chmod +x .vsync/hooks/pre-commit'
run 'export VSYNC_MAX_FILE_SIZE=60000000'
run 'camera lisbon/raw-export.mov 65536'
fails 'vsync commit -m "Raw export"'
rc
run 'rm lisbon/raw-export.mov'
unset VSYNC_MAX_FILE_SIZE

cd "$root"
quietly 'vsync clone -q /tmp/vsync-guide/usb/photos.vsync scratch'
cd scratch
block damaged
run 'cd /tmp/vsync-guide/scratch'
run 'pack=$(ls -S .vsync/chunks/*.vpk | head -n 1)'
run 'printf "\\377\\377\\377\\377" | dd of="$pack" bs=1 seek=4000000 conv=notrunc status=none'
fails 'vsync fsck'
rc
fails 'vsync show HEAD:lisbon/tram.mp4 > /tmp/vsync-guide/tram.mp4'
rc

block repaired
run 'vsync fsck --repair'
run 'vsync show HEAD:lisbon/tram.mp4 > /tmp/vsync-guide/tram.mp4'

# -- 8. troubleshooting ------------------------------------------------------------------

block t-notrepo
run 'cd /tmp/vsync-guide'
fails 'vsync status'
rc

laptop
block t-unknownrev
fails 'vsync show HEAD~40:notes.md'
fails 'vsync diff sintra'
fails 'vsync show 0000000:notes.md'

block t-lock
run 'flock .vsync/lock sleep 5 &'
fails 'sleep 0.5; VSYNC_LOCK_TIMEOUT=2 vsync commit -m "while something else runs"'
rc
wait

block t-dirty
run 'vsync remote add desk /tmp/vsync-guide/desktop/photos'
run 'echo "draft" > /tmp/vsync-guide/desktop/photos/postcard.txt'
run 'echo "- Day 7: photo book" >> notes.md'
run 'vsync commit -q -m "Day 7"'
fails 'vsync push desk'
rc

# -- SSH: a forced command, host keys ----------------------------------------------------

sshd_bin=$(command -v sshd || true)
[ -z "$sshd_bin" ] && [ -x /usr/sbin/sshd ] && sshd_bin=/usr/sbin/sshd
if [ -n "$sshd_bin" ]; then
    s="$root/ssh"
    mkdir -p "$s/home/.ssh" "$s/srv"
    [ "$(id -u)" = 0 ] && mkdir -p /run/sshd
    ssh-keygen -q -t ed25519 -N "" -C guide-host -f "$s/host_key"
    ssh-keygen -q -t ed25519 -N "" -C ada@laptop -f "$s/home/.ssh/id_ed25519"
    ssh-keygen -q -t ed25519 -N "" -C other-host -f "$s/other_host_key"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # the authorized_keys line the guide shows, with this run's paths
    printf 'command="%s serve --stdio --restrict-to %s \\"${SSH_ORIGINAL_COMMAND##* }\\"",restrict %s\n' \
        "$here/.venv/bin/vsync" "$s/srv" "$(cat "$s/home/.ssh/id_ed25519.pub")" >"$s/authorized_keys"
    cat >"$s/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $s/host_key
PidFile $s/sshd.pid
AuthorizedKeysFile $s/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
EOF
    "$sshd_bin" -f "$s/sshd_config" -E "$s/sshd.log"
    trap 'kill "$(cat "$s/sshd.pid" 2>/dev/null)" 2>/dev/null || true' EXIT
    for _ in $(seq 50); do [ -s "$s/sshd.pid" ] && break; sleep 0.1; done
    printf 'Host photoserver\n    HostName 127.0.0.1\n    Port %s\n    User %s\n' "$port" "$(id -un)" \
        >"$s/home/.ssh/config"
    export HOME="$s/home"
    url="photoserver:$s/srv/photos.vsync"

    block ssh-push
    run 'cat ~/.ssh/config'
    fails "vsync push $url"
    rc
    run "vsync push --create --accept-new-host-key $url"
    fails "vsync push photoserver:/tmp/vsync-guide/usb/photos.vsync"
    rc

    # the server gets a new host key (reinstalled, or someone in between)
    quietly "cp $s/other_host_key $s/host_key"
    quietly 'kill -HUP "$(cat "$s/sshd.pid")"'
    sleep 0.5
    block t-hostkey
    fails "vsync fetch $url"
    rc
fi

# -- paste into the guide ----------------------------------------------------------------

if [ "$write" = 1 ]; then
    python3 - "$guide" "$out" <<'EOF'
import pathlib, re, sys
guide, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
text = guide.read_text(encoding="utf-8")
missing = []
def fill(m: re.Match) -> str:
    name = m.group(1)
    f = out / f"{name}.txt"
    if not f.exists():
        missing.append(name)
        return m.group(0)
    body = f.read_text(encoding="utf-8")
    return f"```console session={name}\n{body}```"
text = re.sub(r"```console session=([\w-]+)\n.*?^```", fill, text, flags=re.S | re.M)
guide.write_text(text, encoding="utf-8")
print(f"updated {guide}" + (f"; not produced, left as they were: {', '.join(missing)}" if missing else ""))
EOF
fi
echo "transcripts in $out"
