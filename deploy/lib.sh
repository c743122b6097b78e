# shellcheck shell=bash
# Shared steps of install-pi.sh and install-jetson.sh. Sourced, not executed.
# Every step is idempotent: re-running an install upgrades the package and the unit but never
# overwrites an existing /etc/fer-edge/config.toml.

PREFIX=${FER_EDGE_PREFIX:-/opt/fer-edge}
VENV="$PREFIX/venv"
MODELS_DIR="$PREFIX/models"
CONF_DIR=/etc/fer-edge
CONF="$CONF_DIR/config.toml"
UNIT_DIR=/etc/systemd/system
SERVICE_USER=fer-edge
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_root() {
    [[ $(id -u) -eq 0 ]] || die "run as root: sudo $0 $*"
}

# os_field KEY: a value from /etc/os-release (empty if absent).
os_field() {
    sed -n "s/^$1=//p" /etc/os-release 2>/dev/null | tr -d '"'
}

ensure_user() {
    if ! getent group "$SERVICE_USER" >/dev/null; then
        groupadd --system "$SERVICE_USER"
    fi
    if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
        useradd --system --gid "$SERVICE_USER" --groups video --home-dir /var/lib/fer-edge \
            --no-create-home --shell /usr/sbin/nologin \
            --comment "fer-edge service" "$SERVICE_USER"
        log "created system user $SERVICE_USER (groups: $SERVICE_USER, video)"
    else
        usermod --append --groups video "$SERVICE_USER"
    fi
}

# make_venv SKIP_PACKAGE...: create the venv (with the system site-packages, so apt's
# picamera2 / GStreamer OpenCV are importable) and install fer-edge with its [edge]
# dependencies, except the named distributions, which the system provides.
make_venv() {
    local skip=("$@") constraints
    if [[ ! -x "$VENV/bin/python" ]]; then
        install -d -m 0755 "$PREFIX"
        python3 -m venv --system-site-packages "$VENV"
        log "created $VENV"
    fi
    # Pin numpy to the apt version: apt's compiled modules (simplejpeg, libcamera, cv2) are
    # built against it, and a pip numpy of another major version breaks their import.
    constraints=$(mktemp)
    if python3 -c 'import numpy' 2>/dev/null; then
        python3 -c 'import numpy; print("numpy==" + numpy.__version__)' >"$constraints"
    fi
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    if [[ ${#skip[@]} -eq 0 ]]; then
        "$VENV/bin/python" -m pip install --quiet -c "$constraints" "${SRC}[edge]"
    else
        # Install the package alone, then its [edge] requirements minus the skipped ones, read
        # from the installed metadata (so this list never drifts from pyproject.toml).
        "$VENV/bin/python" -m pip install --quiet --no-deps "$SRC"
        local reqs=()
        mapfile -t reqs < <("$VENV/bin/python" - "${skip[@]}" <<'PY'
import sys
from importlib.metadata import requires
from pip._vendor.packaging.requirements import Requirement
skip = {s.lower() for s in sys.argv[1:]}
for text in requires("fer-edge") or []:
    req = Requirement(text)
    if req.marker is None or not req.marker.evaluate({"extra": "edge"}):
        continue
    if req.name.lower() in skip:
        continue
    req.marker = None
    print(req)
PY
)
        "$VENV/bin/python" -m pip install --quiet -c "$constraints" "${reqs[@]}"
        log "skipped pip packages provided by the system: ${skip[*]}"
    fi
    rm -f "$constraints"
    "$VENV/bin/fer-edge" --help >/dev/null || die "fer-edge does not start from $VENV"
    log "installed fer-edge into $VENV"
}

# render_config EXAMPLE [SOURCE_BLOCK_FILE]: print EXAMPLE, with the lines between
# '# >>> source' and '# <<< source' replaced by the file's content when one is given.
render_config() {
    local example=$1 block=${2:-}
    if [[ -z "$block" ]]; then
        cat "$example"
        return
    fi
    [[ -f "$block" ]] || die "source block $block does not exist"
    awk -v blk="$block" '
        /^# >>> source/ { print; while ((getline line < blk) > 0) print line; skip = 1; next }
        /^# <<< source/ { skip = 0 }
        !skip { print }
    ' "$example"
}

# install_config [SOURCE_BLOCK_FILE]: /etc/fer-edge/config.toml from the example (only if absent);
# an optional file replaces the example's [source] block (between the '# >>> source' markers).
install_config() {
    local source_block=${1:-} tmp
    install -d -m 0750 -o root -g "$SERVICE_USER" "$CONF_DIR"
    install -m 0644 -o root -g root "$SRC/deploy/config.example.toml" "$CONF_DIR/config.example.toml"
    if [[ -e "$CONF" ]]; then
        log "keeping existing $CONF"
    else
        tmp=$(mktemp "$CONF_DIR/.config.toml.XXXXXX")
        render_config "$SRC/deploy/config.example.toml" "$source_block" >"$tmp"
        chown root:"$SERVICE_USER" "$tmp"
        chmod 0640 "$tmp"
        mv -f "$tmp" "$CONF"
        log "wrote $CONF (edit the broker URL, then: systemctl restart fer-edge)"
    fi
    # Secrets: an optional environment file and password file, readable by the service only.
    for f in "$CONF_DIR/env" "$CONF_DIR/mqtt-password"; do
        if [[ -e "$f" ]]; then
            chown root:"$SERVICE_USER" "$f"
            chmod 0640 "$f"
        fi
    done
}

# install_models: /opt/fer-edge/models/current.tflite -> the bundled model, unless a model was
# already pushed (deploy/push-model.sh moves the link atomically).
install_models() {
    local bundled
    install -d -m 0755 "$MODELS_DIR"
    bundled=$("$VENV/bin/python" -c 'from edge.config import default_model_path; print(default_model_path())')
    if [[ ! -e "$MODELS_DIR/current.tflite" ]]; then
        [[ -f "$bundled" ]] || die "bundled model $bundled is missing from the package"
        ln -sfn "$bundled" "$MODELS_DIR/current.tflite"
        log "model: $MODELS_DIR/current.tflite -> $bundled"
    fi
}

install_docs() {
    install -d -m 0755 "$PREFIX/doc"
    install -m 0644 "$SRC/docs/DEPLOY.md" "$PREFIX/doc/DEPLOY.md"
}

# install_unit [DROPIN_FILE]: install, verify, enable and (re)start the service.
install_unit() {
    local dropin=${1:-}
    install -m 0644 "$SRC/systemd/fer-edge.service" "$UNIT_DIR/fer-edge.service"
    if [[ -n "$dropin" ]]; then
        install -d -m 0755 "$UNIT_DIR/fer-edge.service.d"
        install -m 0644 "$dropin" "$UNIT_DIR/fer-edge.service.d/$(basename "$dropin")"
    fi
    systemd-analyze verify "$UNIT_DIR/fer-edge.service" || die "systemd-analyze verify failed"
    systemctl daemon-reload
    "$VENV/bin/fer-edge" validate-config "$CONF" ||
        die "$CONF is invalid: fix it, then run this script again"
    if [[ ${FER_EDGE_NO_START:-0} == 1 ]]; then
        systemctl enable fer-edge.service
        log "enabled fer-edge.service (not started: FER_EDGE_NO_START=1)"
    else
        systemctl enable fer-edge.service
        systemctl restart fer-edge.service
        log "fer-edge.service enabled and (re)started: journalctl -u fer-edge -f"
    fi
}
