# shellcheck shell=bash
# Shared by build-picamera2.sh and build-arm64.sh (sourced): reuse, mmdebstrap, pip inside a root.
# A root is kept as it was built while its stamp (a hash of the script that built it, of this file
# and of pyproject.toml, whose dependencies it installs) matches, and rebuilt from nothing when the
# stamp differs or the root is absent.

# root_is_current ROOT HASH: true if ROOT was built by this version of the scripts.
root_is_current() {
    [ -f "$1/.monitor-root-stamp" ] && [ "$(cat "$1/.monitor-root-stamp")" = "$2" ]
}

# start_root ROOT: checks what building needs and prints the folder to build in (ROOT.partial).
start_root() {
    [ "$(id -u)" = 0 ] || { echo "building $1 needs root (mmdebstrap, chroot)" >&2; return 1; }
    command -v mmdebstrap >/dev/null || { echo "building $1 needs mmdebstrap (apt-get install mmdebstrap)" >&2; return 1; }
    rm -rf "$1" "$1.partial"
    mkdir -p "$(dirname "$1")"
    echo "$1.partial"
}

# bootstrap DIR SUITE ARCHITECTURE PACKAGES [MMDEBSTRAP OPTIONS...]: a minimal Debian root (the
# essential packages and PACKAGES, no apt: nothing is installed in it later but with pip), its log
# shown on failure. mmdebstrap installs in one dpkg run, several times faster than debootstrap when
# the packages' scripts run under emulation. Valid-Until is not checked: a mirror that serves a
# snapshot (as this machine's does) has a testing Release past that date, which apt would refuse.
bootstrap() {
    local dir=$1 suite=$2 architecture=$3 packages=$4
    shift 4
    mmdebstrap --variant=essential --architectures="$architecture" --include="$packages" \
        --aptopt='Acquire::Check-Valid-Until "false"' "$@" "$suite" "$dir" \
        "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$dir.log" 2>&1 || { tail -30 "$dir.log"; return 1; }
    rm -f "$dir.log"
}

# allow_pip DIR: pip inside the root gets the host's DNS, its CA bundle (a proxy that inspects TLS
# signs with a CA only the host's bundle has) as /etc/host-ca.crt, and the host's proxy settings.
ROOT_ENV=(PATH=/opt/venv/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180)
allow_pip() {
    local host_ca=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}} var
    cp /etc/resolv.conf "$1/etc/resolv.conf"
    if [ -f "$host_ca" ]; then
        cp "$host_ca" "$1/etc/host-ca.crt"
        ROOT_ENV+=(PIP_CERT=/etc/host-ca.crt)
    fi
    for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
        if [ -n "${!var:-}" ]; then ROOT_ENV+=("$var=${!var}"); fi
    done
}

PIP_OPTIONS=()

# in_new_root DIR COMMAND...: run COMMAND in the root being built.
in_new_root() {
    local dir=$1
    shift
    chroot "$dir" /usr/bin/env -i "${ROOT_ENV[@]}" "$@"
}

# install_project_dependencies DIR PYPROJECT [MORE...]: pip installs the project's dependencies (as
# pyproject.toml lists them) and MORE into the root's /opt/venv. The project itself is installed at
# each run by enter.sh, from the checkout being tested.
install_project_dependencies() {
    local dir=$1 pyproject=$2
    shift 2
    python3 -c 'import sys, tomllib; print("\n".join(tomllib.load(sys.stdin.buffer)["project"]["dependencies"]))' \
        <"$pyproject" >"$dir/tmp/requirements.txt"
    in_new_root "$dir" pip install --quiet "${PIP_OPTIONS[@]}" -r /tmp/requirements.txt "$@"
    rm "$dir/tmp/requirements.txt"
}

# finish_root DIR ROOT HASH: stamp the root and put it in place.
finish_root() {
    rm -rf "$1/var/cache/apt/archives"/*.deb "$1/root/.cache"
    echo "$3" >"$1/.monitor-root-stamp"
    mv "$1" "$2"
    echo "$2 ready ($(du -sh "$2" | cut -f1))"
}
