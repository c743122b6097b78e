#!/usr/bin/env bash
# Install fer-edge as a systemd service on a Jetson with JetPack 6 (Ubuntu 22.04, aarch64).
#
#   git clone ... fer-edge && cd fer-edge && sudo deploy/install-jetson.sh [--pip-opencv]
#
# The CSI camera is read through GStreamer (nvarguscamerasrc). JetPack's system OpenCV
# (apt python3-opencv / nvidia-opencv) is built with GStreamer; pip's opencv-python-headless is
# NOT, and installed into the venv it would shadow the system one and the CSI camera could not
# open. So by default the venv uses the system cv2 and pip does not install OpenCV at all.
# --pip-opencv installs the pip wheel anyway (USB cameras only, no CSI).
#
# Idempotent: run it again to upgrade. An existing /etc/fer-edge/config.toml is kept.
# Environment: FER_EDGE_NO_START=1 enables the service without starting it.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PIP_OPENCV=0
for arg in "$@"; do
    case $arg in
        --pip-opencv) PIP_OPENCV=1 ;;
        -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
        *) die "unknown option $arg (valid: --pip-opencv)" ;;
    esac
done

require_root "$@"
if [[ ! -e /etc/nv_tegra_release ]]; then
    log "warning: /etc/nv_tegra_release not found; this does not look like a Jetson"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends python3-venv python3-pip \
    gstreamer1.0-tools gstreamer1.0-plugins-good
if [[ $PIP_OPENCV == 0 ]]; then
    # JetPack ships OpenCV with GStreamer as python3-opencv (or nvidia-opencv); keep it.
    python3 -c 'import cv2' 2>/dev/null || apt-get install -y --no-install-recommends python3-opencv
fi

ensure_user
# The Argus camera daemon checks the caller's groups too.
usermod --append --groups video "$SERVICE_USER"
if [[ $PIP_OPENCV == 1 ]]; then
    make_venv
else
    make_venv opencv-python-headless
    check_system_cv2 "install JetPack's OpenCV (nvidia-opencv)"
fi

install_config "$SRC/deploy/jetson-source.toml"
install_models
install_docs
install_unit "$SRC/deploy/jetson-dropin.conf"
