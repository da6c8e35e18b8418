#!/usr/bin/env bash
# Install the monitor as a systemd service on a Raspberry Pi, or remove it. Run as root from
# the project folder (`sudo make install` / `sudo make uninstall` call this):
#
#   systemd/install.sh install         user `monitor`, venv in /opt/monitor/venv, the project
#                                      (not editable), /etc/monitor/config.yaml if there is
#                                      none, the unit; enable it, start it if a reference exists
#   systemd/install.sh uninstall       stop and remove all that, but keep /etc/monitor (config)
#                                      and /var/lib/monitor (reference, events, snapshots)
#   systemd/install.sh add-camera NAME another camera on this Pi, run by the template unit
#                                      monitor@NAME: /etc/monitor/NAME.yaml if there is none
#                                      (data under /var/lib/monitor/NAME, a status page port of
#                                      its own), then `systemctl enable --now monitor@NAME`
#   systemd/install.sh render-config F [DIR]  print config F as installed: reference, events.log
#                                      and events.snapshots moved to DIR (/var/lib/monitor)
#
# Both are idempotent: running install again upgrades the project in the venv and restarts
# the service; the config is never overwritten.
set -euo pipefail

readonly SERVICE=monitor
readonly SERVICE_USER=monitor
readonly VENV=/opt/monitor/venv
readonly CONFIG_DIR=/etc/monitor
readonly CONFIG=$CONFIG_DIR/config.yaml
readonly STATE_DIR=/var/lib/monitor
readonly UNIT=/etc/systemd/system/$SERVICE.service
readonly DROPIN_DIR=/etc/systemd/system/$SERVICE.service.d
# The template for several cameras on one Pi: monitor@NAME reads /etc/monitor/NAME.yaml.
readonly TEMPLATE=/etc/systemd/system/$SERVICE@.service
readonly TEMPLATE_DROPIN_DIR=/etc/systemd/system/$SERVICE@.service.d
# The first status page port add-camera hands out (the example config's is 8080).
readonly FIRST_CAMERA_PORT=8081
# The Python that makes the venv: the system's, so that --system-site-packages sees apt's
# python3-picamera2 (it is tied to the system's libcamera and is not on PyPI).
PYTHON=${PYTHON:-/usr/bin/python3}
SOURCE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

# systemd is PID 1 (not a chroot or a container building an image).
systemd_running() { [ -d /run/systemd/system ]; }

require_root() {
    [ "$(id -u)" -eq 0 ] || die "run as root (sudo make $1)"
}

# The config's data paths are relative to its folder, and /etc is read-only for the
# service (ProtectSystem=strict): move what the daemon writes into its StateDirectory
# (the second argument, /var/lib/monitor by default). Only relative paths are changed,
# and comments stay.
render_config() {
    local source=$1 state_dir=${2:-$STATE_DIR}
    [ -r "$source" ] || die "$source: no such file"
    # A value to move: relative, not a comment, not quoted, not ~/..., not a {flow: mapping}.
    local relative="([^/[:space:]{#\"'~][^[:space:]]*)"
    sed -E \
        -e "s|^(reference:[[:space:]]+)$relative|\\1$state_dir/\\2|" \
        -e "/^reference:[[:space:]]*(#.*)?\$/,/^[^[:space:]#]/{
              s|^([[:space:]]+path:[[:space:]]+)$relative|\\1$state_dir/\\2|
            }" \
        -e "/^events:/,/^[^[:space:]#]/{
              s|^([[:space:]]+log:[[:space:]]+)$relative|\\1$state_dir/\\2|
              /^[[:space:]]+snapshots:[[:space:]]+null([[:space:]]|\$)/b
              s|^([[:space:]]+snapshots:[[:space:]]+)$relative|\\1$state_dir/\\2|
            }" \
        "$source"
}

create_user() {
    if ! getent passwd "$SERVICE_USER" >/dev/null; then
        say "creating system user $SERVICE_USER"
        useradd --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "camera change monitor" "$SERVICE_USER"
    fi
    # For `sudo -u monitor ... capture-reference`; the unit has its own SupplementaryGroups=.
    local group
    for group in video gpio; do
        if getent group "$group" >/dev/null; then
            usermod --append --groups "$group" "$SERVICE_USER"
        fi
    done
}

# The units ask for the video and gpio groups, and a missing group stops the service from
# starting at all (status 216/GROUP): on systems without one, ask only for those that exist.
# $1: the unit's drop-in folder.
write_group_dropin() {
    local dropin_dir=$1 groups=() group
    for group in video gpio; do
        getent group "$group" >/dev/null && groups+=("$group")
    done
    if [ "${#groups[@]}" -eq 2 ]; then
        rm -f "$dropin_dir/groups.conf"
        rmdir "$dropin_dir" 2>/dev/null || true
        return
    fi
    say "group(s) missing, $(basename "$dropin_dir" .d) runs with only: ${groups[*]:-(none)}"
    install -d -m 0755 "$dropin_dir"
    printf '# Written by systemd/install.sh: only the groups this system has.\n[Service]\nSupplementaryGroups=\nSupplementaryGroups=%s\n' \
        "${groups[*]:-}" >"$dropin_dir/groups.conf"
}

install_venv() {
    [ -x "$VENV/bin/python" ] || {
        say "creating $VENV"
        install -d -m 0755 "$(dirname "$VENV")"
        "$PYTHON" -m venv --system-site-packages "$VENV"
    }
    # Build from a copy: a build in the checkout would leave root-owned build/ and
    # *.egg-info behind in the user's folder.
    local build
    build=$(mktemp -d)
    # shellcheck disable=SC2064  # expand $build now: it is local
    trap "rm -rf '$build'" EXIT
    mkdir "$build/src"
    tar -C "$SOURCE" --exclude=./.venv --exclude=./.git --exclude=./build --exclude='*.egg-info' \
        --exclude=__pycache__ --exclude=./.pytest_cache --exclude=./.mypy_cache \
        --exclude=./.ruff_cache --exclude=./.hypothesis -cf - . | tar -C "$build/src" -xf -
    # Keep the numpy apt's camera modules (simplejpeg, python3-av) were compiled against:
    # a newer one from PyPI shadowing it in the venv breaks them. pip then picks OpenCV and
    # scikit-image releases that work with it.
    local constraints=()
    local numpy_version
    if numpy_version=$("$PYTHON" -c 'import numpy; print(numpy.__version__)' 2>/dev/null); then
        echo "numpy==$numpy_version" >"$build/constraints.txt"
        constraints=(--constraint "$build/constraints.txt")
        say "keeping the system's numpy $numpy_version"
    fi
    say "installing the project into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade \
        "${constraints[@]}" "$build/src"
    rm -rf "$build"
    trap - EXIT
}

install_config() {
    install -d -o root -g "$SERVICE_USER" -m 0750 "$CONFIG_DIR"
    # Written by the service, and by `capture-reference` before the service ever ran. After
    # an uninstall its files belong to the old user id: hand them over, as systemd would.
    install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0750 "$STATE_DIR"
    chown -R "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR"
    if [ -e "$CONFIG" ]; then
        say "keeping $CONFIG"
    else
        say "writing $CONFIG (data paths under $STATE_DIR)"
        local rendered
        rendered=$(mktemp)
        render_config "$SOURCE/config.yaml" >"$rendered"
        install -o root -g "$SERVICE_USER" -m 0640 "$rendered" "$CONFIG"
        rm -f "$rendered"
    fi
    # Root group ownership may be stale after an uninstall and a new user id.
    chgrp "$SERVICE_USER" "$CONFIG_DIR" "$CONFIG"
    "$VENV/bin/monitor" check "$CONFIG" || die "$CONFIG: fix the problems above, then run this again"
}

reference_path() {
    "$VENV/bin/python" -c 'import sys
from monitor.config import load_config
print(load_config(sys.argv[1]).reference.path)' "$CONFIG"
}

install_unit() {
    install -m 0644 "$SOURCE/systemd/$SERVICE.service" "$UNIT"
    install -m 0644 "$SOURCE/systemd/$SERVICE@.service" "$TEMPLATE"
    write_group_dropin "$DROPIN_DIR"
    write_group_dropin "$TEMPLATE_DROPIN_DIR"
    if systemd_running; then
        systemctl daemon-reload
    fi
    systemctl enable "$SERVICE.service"
}

cmd_install() {
    require_root install
    command -v systemctl >/dev/null || die "systemctl not found: this needs systemd"
    create_user
    install_venv
    install_config
    install_unit
    local reference
    reference=$(reference_path)
    if [ -e "$reference" ] && systemd_running; then
        systemctl restart "$SERVICE.service"
        say "started: systemctl status $SERVICE; journalctl -u $SERVICE -f"
    elif [ -e "$reference" ]; then
        say "enabled; systemd is not running here, so it starts at the next boot"
    else
        say "enabled, not started: the daemon needs a reference picture first. Next:"
        say "  edit $CONFIG (source, mask, gpio), then with the camera pointed at the scene:"
        say "  sudo -u $SERVICE_USER $VENV/bin/monitor capture-reference $CONFIG"
        say "  sudo systemctl start $SERVICE"
    fi
}

# The template's instances: those systemd knows of, and those enabled (even if never started).
camera_units() {
    {
        if systemd_running; then
            systemctl list-units --all --plain --no-legend "$SERVICE@*.service" | awk '{print $1}'
        fi
        find /etc/systemd/system -path "*.wants/$SERVICE@?*.service" -printf '%f\n' 2>/dev/null
    } | sort -u
}

cmd_uninstall() {
    require_root uninstall
    local camera
    for camera in $(camera_units); do
        if systemd_running; then
            systemctl disable --now "$camera" || true
        else
            systemctl disable "$camera" || true
        fi
        say "removed $camera"
    done
    if [ -e "$TEMPLATE" ] || [ -d "$TEMPLATE_DROPIN_DIR" ]; then
        rm -f "$TEMPLATE"
        rm -rf "$TEMPLATE_DROPIN_DIR"
        say "removed $TEMPLATE"
    fi
    if [ -e "$UNIT" ] || [ -d "$DROPIN_DIR" ]; then
        if systemd_running; then
            systemctl disable --now "$SERVICE.service" || true
        else
            systemctl disable "$SERVICE.service" || true
        fi
        rm -f "$UNIT"
        rm -rf "$DROPIN_DIR"
        if systemd_running; then
            systemctl daemon-reload
            systemctl reset-failed "$SERVICE.service" 2>/dev/null || true
        fi
        say "removed $UNIT"
    fi
    if [ -d "$VENV" ]; then
        rm -rf "$VENV"
        rmdir "$(dirname "$VENV")" 2>/dev/null || true
        say "removed $VENV"
    fi
    if getent passwd "$SERVICE_USER" >/dev/null; then
        userdel "$SERVICE_USER"
        say "removed user $SERVICE_USER"
    fi
    say "kept $CONFIG_DIR and $STATE_DIR; remove them by hand if you no longer need them"
}

# The status page ports the configs in /etc/monitor ask for (one per line).
configured_ports() {
    "$VENV/bin/python" -c 'import sys
from monitor.config import load_config
from monitor.exc import ConfigError
for path in sys.argv[1:]:
    try:
        http = load_config(path).http
    except ConfigError:
        continue
    if http is not None:
        print(http.port)' "$CONFIG_DIR"/*.yaml 2>/dev/null || true
}

cmd_add_camera() {
    local name=$1
    require_root "add-camera"
    # Also a valid systemd instance name and a file name; not "config", the single service's.
    [[ $name =~ ^[A-Za-z0-9][A-Za-z0-9_-]*$ ]] || die "camera name $name: use letters, digits, - and _"
    [ "$name" != config ] || die "camera name config: that is the single service's /etc/monitor/config.yaml"
    if [ ! -x "$VENV/bin/monitor" ] || [ ! -e "$TEMPLATE" ]; then
        die "run 'make install' first"
    fi
    local config=$CONFIG_DIR/$name.yaml state_dir=$STATE_DIR/$name
    # The service creates it too (StateDirectory=); capture-reference runs before that.
    install -d -o "$SERVICE_USER" -g "$SERVICE_USER" -m 0750 "$state_dir"
    if [ -e "$config" ]; then
        say "keeping $config"
    else
        local rendered port used
        rendered=$(mktemp)
        render_config "$SOURCE/config.yaml" "$state_dir" >"$rendered"
        # Every camera's status page needs a port of its own: the lowest that no config here uses.
        if ! grep -q '^http:' "$rendered"; then
            port=$FIRST_CAMERA_PORT
            used=$(configured_ports)
            while grep -qx "$port" <<<"$used"; do
                port=$((port + 1))
            done
            printf '\n# Written by install.sh add-camera: this camera'"'"'s status page, on a port of its own.\nhttp:\n  host: 127.0.0.1\n  port: %s\n' \
                "$port" >>"$rendered"
        fi
        say "writing $config (data paths under $state_dir${port:+, status page on port $port})"
        install -o root -g "$SERVICE_USER" -m 0640 "$rendered" "$config"
        rm -f "$rendered"
    fi
    "$VENV/bin/monitor" check "$config" || die "$config: fix the problems above, then run this again"
    say "next: edit $config (source, mask, gpio; a pin and an mqtt.topic_prefix of its own), then"
    say "  sudo -u $SERVICE_USER $VENV/bin/monitor capture-reference $config"
    say "  sudo systemctl enable --now $SERVICE@$name"
}

case "${1:-}" in
    install) cmd_install ;;
    uninstall) cmd_uninstall ;;
    add-camera)
        [ $# -eq 2 ] || die "usage: $0 add-camera NAME"
        cmd_add_camera "$2"
        ;;
    render-config)
        [ $# -eq 2 ] || [ $# -eq 3 ] || die "usage: $0 render-config CONFIG [STATE_DIR]"
        render_config "$2" "${3:-}"
        ;;
    *) die "usage: $0 install | uninstall | add-camera NAME | render-config CONFIG [STATE_DIR]" ;;
esac
