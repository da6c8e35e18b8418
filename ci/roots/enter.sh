#!/usr/bin/env bash
# Run a command inside a root made by build-picamera2.sh or build-arm64.sh, on a copy of the checkout.
#
# Usage: enter.sh ROOT PROJECT COMMAND...
# The command runs in /w/project (a copy of PROJECT on a tmpfs, installed there in the root's
# /opt/venv, editable, with any dependency it gained since the root was built), with ../shared/data
# beside it when PROJECT has one. Everything it mounts lives in a mount namespace of its own, so
# nothing stays mounted when it ends, however it ends; the root itself is left as built. The command
# is ended after MONITOR_TEST_TIMEOUT seconds (default 1800).
set -euo pipefail

ROOT=$(cd "${1:?usage: enter.sh ROOT PROJECT COMMAND...}" && pwd)
PROJECT=$(cd "${2:?usage: enter.sh ROOT PROJECT COMMAND...}" && pwd)
shift 2
[ "$#" -gt 0 ] || { echo "usage: enter.sh ROOT PROJECT COMMAND..." >&2; exit 2; }

exec unshare --mount --propagation private -- bash -s "$ROOT" "$PROJECT" "$@" <<'INNER'
set -euo pipefail
ROOT=$1 PROJECT=$2
shift 2
mount -t proc proc "$ROOT/proc"
mount -t sysfs sysfs "$ROOT/sys"  # libcamera enumerates devices through udev, which reads /sys
mount --bind /dev "$ROOT/dev"
mount -t tmpfs tmpfs "$ROOT/dev/shm"
mount -t tmpfs tmpfs "$ROOT/tmp"
mkdir -p "$ROOT/w"
mount -t tmpfs tmpfs "$ROOT/w"
mkdir -p "$ROOT/w/project" "$ROOT/w/shared/data"
tar -C "$PROJECT" --exclude=./.venv --exclude=./.git --exclude='*.egg-info' --exclude=__pycache__ \
    --exclude=.mypy_cache --exclude=.ruff_cache --exclude=.pytest_cache --exclude=.hypothesis -cf - . |
    tar -C "$ROOT/w/project" -xf -
# The real data beside the checkout (tests skip where it is absent, as in a fresh clone).
if [ -d "$PROJECT/../shared/data" ]; then
    mount --bind -o ro "$PROJECT/../shared/data" "$ROOT/w/shared/data"
fi
in_root() {
    # Python may keep the modules it compiles in the root: the arm64 root is built without them.
    chroot "$ROOT" /usr/bin/env -i PATH=/opt/venv/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 TMPDIR=/tmp \
        sh -c 'cd /w/project && exec "$@"' sh "$@"
}
# --no-build-isolation: the root's setuptools builds it, rather than one pip would download each time.
in_root env PIP_CERT=/etc/host-ca.crt pip install --quiet --no-build-isolation --disable-pip-version-check -e .
in_root timeout -k 10 "${MONITOR_TEST_TIMEOUT:-1800}" "$@"
INNER
