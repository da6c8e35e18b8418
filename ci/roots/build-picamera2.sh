#!/usr/bin/env bash
# Build (or reuse) a Debian testing root in which real picamera2 drives libcamera's virtual camera.
#
# Usage: build-picamera2.sh ROOT
# Bookworm's libcamera (0.0.3) predates the virtual pipeline handler and trixie's (0.4.0) has a frame
# status bug; testing carries 0.7. picamera2 is not packaged by Debian: it comes from PyPI, into a
# venv that sees the system's libcamera bindings, as Raspberry Pi OS users make theirs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=ci/roots/common.sh
source "$HERE/common.sh"
ROOT=${1:?usage: build-picamera2.sh ROOT}
PICAMERA2_VERSION=0.3.38
stamp=$(cat "$HERE/build-picamera2.sh" "$HERE/common.sh" "$HERE/../../pyproject.toml" | sha256sum | cut -d' ' -f1)
if root_is_current "$ROOT" "$stamp"; then
    echo "reusing $ROOT"
    exit 0
fi

packages=(
    python3 python3-venv python3-setuptools
    # libcamera 0.7 with its virtual pipeline handler, and its Python bindings (what picamera2 imports).
    python3-libcamera libcamera-ipa
    # picamera2's python-prctl (no wheel on PyPI); gcc builds PiDNG and the dma-heap shim.
    python3-prctl
    gcc libc6-dev python3-dev
)
dir=$(start_root "$ROOT")
echo "mmdebstrap testing (amd64) into $dir"
bootstrap "$dir" testing amd64 "$(IFS=,; echo "${packages[*]}")"
allow_pip "$dir"
in_new_root "$dir" python3 -m venv --system-site-packages /opt/venv
# picamera2 as pip installs it, with what it declares (PiDNG builds from its sdist).
in_new_root "$dir" pip install --quiet "picamera2==$PICAMERA2_VERSION"
install_project_dependencies "$dir" "$HERE/../../pyproject.toml" pytest
finish_root "$dir" "$ROOT" "$stamp"
