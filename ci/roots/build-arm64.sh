#!/usr/bin/env bash
# Build (or reuse) an arm64 Debian bookworm root, run under qemu-user-static: 64-bit Raspberry Pi OS's
# base, with the project's dependencies installed by pip from PyPI's aarch64 wheels, as on a Pi.
#
# Usage: build-arm64.sh ROOT
# Needs mmdebstrap, arch-test, qemu-user-static and binfmt-support; mounts binfmt_misc and enables qemu-aarch64 if they are
# not yet (with the fix-binary flag Debian sets, so the emulator works inside the chroot).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=ci/roots/common.sh
source "$HERE/common.sh"
ROOT=${1:?usage: build-arm64.sh ROOT}

if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64
fi

stamp=$(cat "$HERE/build-arm64.sh" "$HERE/common.sh" "$HERE/../../pyproject.toml" | sha256sum | cut -d' ' -f1)
if root_is_current "$ROOT" "$stamp"; then
    echo "reusing $ROOT"
    exit 0
fi
dir=$(start_root "$ROOT")
echo "mmdebstrap bookworm (arm64, emulated) into $dir"
# Byte-compiling Python's modules at install time takes minutes under emulation; Python compiles
# what the tests import at their first run instead, and keeps it in the root.
# libstdc++6: PyPI's NumPy and OpenCV wheels use the system's C++ runtime, as Raspberry Pi OS has it;
# e2fsprogs: chattr, with which a fault test makes a folder read-only even to root.
# shellcheck disable=SC2016 # $1 is mmdebstrap's, expanded by its hook shell
no_compile='chroot "$1" dpkg-divert --quiet --local --rename --add /usr/bin/py3compile; ln -s /bin/true "$1/usr/bin/py3compile"'
bootstrap "$dir" bookworm arm64 python3,python3-venv,libstdc++6,e2fsprogs --essential-hook="$no_compile"
allow_pip "$dir"
PIP_OPTIONS=(--no-compile)
in_new_root "$dir" python3 -m venv /opt/venv
# setuptools for building the project in place (enter.sh installs it without build isolation).
in_new_root "$dir" pip install --quiet --no-compile 'setuptools>=68'
install_project_dependencies "$dir" "$HERE/../../pyproject.toml" pytest hypothesis
finish_root "$dir" "$ROOT" "$stamp"
