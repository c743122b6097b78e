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

# check_system_cv2 HINT: the venv's cv2 must be the system's (apt's python3-opencv, or JetPack's
# nvidia-opencv), built with GStreamer; pip's opencv-python-headless has no GStreamer and, in the
# venv, would shadow the system one.
check_system_cv2() {
    "$VENV/bin/python" -I - <<'PY' || die "the venv's OpenCV is not the system one with GStreamer; $1"
import sys
import cv2
info = cv2.getBuildInformation()
line = next((l for l in info.splitlines() if "GStreamer" in l), "")
print(f"cv2 {cv2.__version__} from {cv2.__file__}: {line.strip() or 'GStreamer: NO'}")
sys.exit(0 if "YES" in line and "/site-packages/" not in cv2.__file__ else 1)
PY
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

# install_models: /opt/fer-edge/models/current.tflite -> a copy of the bundled model, unless a
# model was pushed (deploy/push-model.sh moves the link atomically and keeps previous.tflite).
#
# The model is copied out of the installed venv into MODELS_DIR (as bundled-<sha12>.tflite, the
# naming push-model.sh uses), never linked into the source checkout: the checkout usually lives
# under /home, which ProtectHome=yes hides from the service, and it may be deleted after the
# install. A link that is missing, dangling or points outside MODELS_DIR (earlier versions of this
# script linked into the checkout) is replaced; a link to an older bundled model is moved to the
# new one on upgrade (previous.tflite keeps the old one); a pushed model is never touched.
install_models() {
    local bundled sha name link="$MODELS_DIR/current.tflite" target="" resolved=""
    install -d -m 0755 "$MODELS_DIR"
    # -I: isolated mode. From the checkout's folder, sys.path[0] would be the checkout and
    # `import edge` would find its copy instead of the installed one.
    bundled=$("$VENV/bin/python" -I -c 'from edge.config import default_model_path; print(default_model_path())')
    [[ $bundled == "$VENV"/* && -f $bundled ]] ||
        die "bundled model $bundled is not in $VENV (the installed package is incomplete)"
    sha=$(sha256sum "$bundled" | cut -d' ' -f1)
    name="bundled-${sha:0:12}.tflite"
    if [[ ! -f "$MODELS_DIR/$name" ]]; then
        install -m 0644 "$bundled" "$MODELS_DIR/.$name.tmp"
        mv -f "$MODELS_DIR/.$name.tmp" "$MODELS_DIR/$name"
    fi
    if [[ -L $link ]]; then
        target=$(readlink "$link")
        resolved=$(readlink -f "$link" || true)
    fi
    if [[ -e $link && ! -L $link ]]; then
        log "keeping $link (a regular file, not a link)"
    elif [[ ! -e $link || $resolved != "$MODELS_DIR"/* ]]; then
        [[ -z $target ]] || log "replacing $link -> $target (missing or outside $MODELS_DIR)"
        swap_link "$name" "$link"
        log "model: $link -> $name (copy of $bundled)"
    elif [[ $target == bundled-*.tflite && $target != "$name" ]]; then
        swap_link "$target" "$MODELS_DIR/previous.tflite"
        swap_link "$name" "$link"
        log "model: $link -> $name (new bundled model; previous.tflite -> $target)"
    else
        log "keeping model $link -> $target"
    fi
}

# swap_link TARGET LINK: point LINK at TARGET atomically (rename a new link over the old one).
swap_link() {
    ln -sfn "$1" "$2.tmp"
    mv -Tf "$2.tmp" "$2"
}

install_docs() {
    install -d -m 0755 "$PREFIX/doc"
    install -m 0644 "$SRC/docs/DEPLOY.md" "$PREFIX/doc/DEPLOY.md"
}

# systemd_running: whether systemd is PID 1 here (sd_booted(3): /run/systemd/system exists). Not
# in a chroot or an image build (pi-gen, sdm), where a unit can be enabled but not started.
systemd_running() {
    [[ -d /run/systemd/system ]]
}

# install_unit [DROPIN_FILE]: install, verify, enable and (re)start the service. Without a running
# systemd (image build) the unit is verified and enabled, and starts on the device's first boot.
install_unit() {
    local dropin=${1:-}
    install -m 0644 "$SRC/systemd/fer-edge.service" "$UNIT_DIR/fer-edge.service"
    if [[ -n "$dropin" ]]; then
        install -d -m 0755 "$UNIT_DIR/fer-edge.service.d"
        install -m 0644 "$dropin" "$UNIT_DIR/fer-edge.service.d/$(basename "$dropin")"
    fi
    systemd-analyze verify "$UNIT_DIR/fer-edge.service" || die "systemd-analyze verify failed"
    "$VENV/bin/fer-edge" validate-config "$CONF" ||
        die "$CONF is invalid: fix it, then run this script again"
    # enable only writes the [Install] symlinks, so it works in a chroot too.
    if systemd_running; then
        systemctl daemon-reload
    fi
    systemctl enable fer-edge.service
    if ! systemd_running; then
        log "systemd is not running here (chroot or image build): fer-edge.service is installed" \
            "and enabled but NOT started; it starts on the next boot"
        return
    fi
    if [[ ${FER_EDGE_NO_START:-0} == 1 ]]; then
        log "enabled fer-edge.service (not started: FER_EDGE_NO_START=1)"
    else
        systemctl restart fer-edge.service
        log "fer-edge.service enabled and (re)started: journalctl -u fer-edge -f"
    fi
}
