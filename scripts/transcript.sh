# Shared by the scripts that record the user guide's transcripts (guide_session.sh,
# guide_s3.sh): sourced, not run. The sourcing script sets $out (where each block's
# transcript goes) and $script_name (for its messages) first.

current=""
last_rc=0

# block NAME: the next commands are recorded in $out/NAME.txt.
block() { current="$out/$1.txt"; : >"$current"; }

# run CMD: record "$ CMD", run it in this shell (so cd and export stay), record its output.
# The session stops if CMD fails: a transcript never shows an accident.
run() {
    printf '$ %s\n' "$1" >>"$current"
    if { eval "$1"; } >>"$current" 2>&1 </dev/null; then last_rc=0; else last_rc=$?; fi
    [ "$last_rc" = 0 ] || die "'$1' exited with $last_rc (see $current)"
}

# fails CMD: as run, for a command the guide shows failing; stops if it succeeds.
fails() {
    printf '$ %s\n' "$1" >>"$current"
    if { eval "$1"; } >>"$current" 2>&1 </dev/null; then last_rc=0; else last_rc=$?; fi
    [ "$last_rc" != 0 ] || die "'$1' was expected to fail (see $current)"
}

# rc: record "$ echo $?" and the exit code of the previous run.
rc() { printf '$ echo $?\n%s\n' "$last_rc" >>"$current"; }

die() {
    echo "$script_name: $*" >&2
    exit 1
}

# camera FILE [KIB]: a new pseudo-random "photo" (does not compress, like a real JPEG).
camera() {
    mkdir -p "$(dirname "$1")"
    python3 -c 'import os, sys; open(sys.argv[1], "wb").write(os.urandom(int(sys.argv[2]) * 1024))' \
        "$1" "${2:-300}"
}
