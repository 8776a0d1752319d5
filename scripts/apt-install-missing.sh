#!/usr/bin/env bash
# Install the Debian packages named as arguments (the Makefile passes only the
# missing ones); nothing to do without arguments. sudo only when not root.
set -euo pipefail
[ "$#" -gt 0 ] || exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing system packages: $*"
$sudo apt-get update -qq >/dev/null
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
