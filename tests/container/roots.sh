#!/usr/bin/env bash
# Build, or reuse, the Debian roots the container tests boot or run programs in.
#
#   tests/container/roots.sh build bookworm-systemd        systemd as PID 1, python3, make, sudo
#   tests/container/roots.sh build testing-homeassistant   Debian testing's Python and a venv
#                                                           with Home Assistant Core in /opt/homeassistant
#   tests/container/roots.sh path NAME                     print where the root is (built or not)
#
# Roots live under $MONITOR_CI_CACHE (default /var/cache/monitor-ci), outside the checkout, and
# are reused while their recipe (suite, packages, pinned versions) is unchanged: a changed
# recipe or a missing root is rebuilt, into NAME.new first, so that a build cut short never
# leaves a half-made root behind. Tests never write into a root: they boot an overlay of it.
# Needs root, debootstrap and systemd-nspawn (Debian: debootstrap, systemd-container).
set -euo pipefail

readonly CACHE=${MONITOR_CI_CACHE:-/var/cache/monitor-ci}
readonly MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE

# Home Assistant Core's release and Python: pip says 2026.11.0 needs Python >= 3.14.2
# (Requires-Python); bookworm has 3.11, Debian testing 3.14.
readonly HA_VERSION=2026.11.0

say() { printf 'roots.sh: %s\n' "$*" >&2; }
die() { printf 'roots.sh: error: %s\n' "$*" >&2; exit 1; }

# The host's CA bundle, read-only: pip inside trusts exactly what the host trusts (this
# machine reaches PyPI through a proxy whose CA only the host's bundle holds).
readonly CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

recipe() {
    case "$1" in
        bookworm-systemd)
            echo "bookworm minbase systemd,systemd-sysv,dbus,python3,python3-venv,make,sudo,ca-certificates"
            ;;
        testing-homeassistant)
            echo "testing minbase python3,python3-venv,ca-certificates homeassistant==$HA_VERSION /config"
            echo "requirements: $(sha256sum "$HERE/ha_requirements.py" | cut -c1-16)"
            ;;
        *) die "unknown root $1 (bookworm-systemd, testing-homeassistant)" ;;
    esac
}

# Run a command inside a root that is not booted (no init; pip, venv).
in_root() {
    local root=$1
    shift
    systemd-nspawn --quiet --register=no --keep-unit --console=pipe -D "$root" \
        --bind-ro="$CA_BUNDLE" --bind="$CACHE/pip:/root/.cache/pip" \
        --setenv=LANG=C.UTF-8 -- "$@"
}

debootstrap_root() {
    local target=$1 suite=$2 packages=$3
    say "debootstrap $suite into $target (a minute or two)"
    debootstrap --variant=minbase --include="$packages" "$suite" "$target" "$MIRROR" >"$target.log" 2>&1 ||
        die "debootstrap $suite failed; the end of $target.log:$(printf '\n'; tail -n 20 "$target.log")"
    rm -f "$target.log"
    # Nothing in a container test needs an apt cache: keep the root small.
    rm -rf "$target"/var/cache/apt/archives/*.deb "$target"/var/lib/apt/lists/*_Packages
}

build_bookworm_systemd() {
    local target=$1
    debootstrap_root "$target" bookworm "systemd,systemd-sysv,dbus,python3,python3-venv,make,sudo,ca-certificates"
    # A container has no console to log in on, and the units below only slow the boot.
    local unit
    for unit in console-getty.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer; do
        ln -sf /dev/null "$target/etc/systemd/system/$unit"
    done
    # The machine id is made at first boot of each overlay, not shared by all of them.
    : >"$target/etc/machine-id"
}

build_testing_homeassistant() {
    local target=$1
    debootstrap_root "$target" testing "python3,python3-venv,ca-certificates"
    # Where the test binds Home Assistant's config folder (the root is mounted read-only).
    mkdir "$target/config"
    say "installing Home Assistant Core $HA_VERSION into $target/opt/homeassistant (a few minutes)"
    in_root "$target" python3 -m venv /opt/homeassistant
    in_root "$target" /opt/homeassistant/bin/pip install --quiet --disable-pip-version-check \
        "homeassistant==$HA_VERSION"
    # Home Assistant installs an integration's requirements when it first loads it; the tests
    # start it with --skip-pip, so install them here: those of the integrations it always
    # loads and of MQTT, as their manifests pin them.
    # (Not in /tmp: nspawn mounts a fresh tmpfs there.)
    cp "$HERE/ha_requirements.py" "$target/root/ha_requirements.py"
    in_root "$target" /opt/homeassistant/bin/python /root/ha_requirements.py >"$target/root/requirements.txt"
    say "and the requirements of its integrations: $(tr '\n' ' ' <"$target/root/requirements.txt")"
    # Wheels only: a few voice integrations' requirements have no wheel for this Python and
    # would need a C++ toolchain in the root; those integrations then do not load, which the
    # tests do not need.
    local requirement
    while read -r requirement; do
        in_root "$target" /opt/homeassistant/bin/pip install --quiet --disable-pip-version-check \
            --only-binary=:all: "$requirement" 2>/dev/null ||
            say "no wheel of $requirement for this Python: left out (its integration will not load)"
    done <"$target/root/requirements.txt"
    rm -f "$target/root/ha_requirements.py" "$target/root/requirements.txt"
}

cmd_build() {
    local name=$1
    [ "$(id -u)" -eq 0 ] || die "building a root needs root"
    command -v debootstrap >/dev/null || die "debootstrap is not installed (apt install debootstrap)"
    command -v systemd-nspawn >/dev/null || die "systemd-nspawn is not installed (apt install systemd-container)"
    local root=$CACHE/roots/$name want
    want=$(recipe "$name")
    mkdir -p "$CACHE/roots" "$CACHE/pip"
    # One build at a time per root: CI and a developer may share the cache.
    exec 9>"$CACHE/roots/$name.lock"
    flock --timeout 1800 9 || die "another build of $name holds $CACHE/roots/$name.lock"
    if [ -f "$root/.recipe" ] && [ "$(cat "$root/.recipe")" = "$want" ]; then
        say "reusing $root"
        echo "$root"
        return
    fi
    local started=$SECONDS
    rm -rf "$root.new"
    mkdir -p "$root.new"
    case "$name" in
        bookworm-systemd) build_bookworm_systemd "$root.new" ;;
        testing-homeassistant) build_testing_homeassistant "$root.new" ;;
    esac
    printf '%s\n' "$want" >"$root.new/.recipe"
    rm -rf "$root"
    mv "$root.new" "$root"
    say "built $root in $((SECONDS - started)) s ($(du -sh "$root" | cut -f1))"
    echo "$root"
}

case "${1:-}" in
    build)
        [ $# -eq 2 ] || die "usage: $0 build NAME"
        cmd_build "$2"
        ;;
    path)
        [ $# -eq 2 ] || die "usage: $0 path NAME"
        recipe "$2" >/dev/null
        echo "$CACHE/roots/$2"
        ;;
    *) die "usage: $0 build NAME | path NAME" ;;
esac
