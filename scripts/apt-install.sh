#!/bin/sh
# apt-install.sh PROGRAM... installs, with Debian's apt-get, the package of
# each program that is not on the PATH: redis-server for the Redis tests,
# chromium for the browser tests. It uses sudo when not run as root.
set -eu

missing=""
for program in "$@"; do
	command -v "$program" >/dev/null || missing="$missing $program"
done
[ -n "$missing" ] || exit 0

command -v apt-get >/dev/null || {
	echo "apt-install:$missing not found, and this is not a Debian-like system: install them by hand" >&2
	exit 1
}
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "apt-install: installing$missing" >&2
$sudo apt-get update -q
# Each program here comes in the Debian package of the same name.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q $missing
