#!/usr/bin/env bash
# Install fer-edge as a systemd service on Raspberry Pi OS Bookworm (64-bit).
#
#   git clone ... fer-edge && cd fer-edge && sudo deploy/install-pi.sh
#
# Idempotent: run it again to upgrade. An existing /etc/fer-edge/config.toml is kept.
# Environment: FER_EDGE_NO_START=1 enables the service without starting it. Without a running
# systemd (a chroot, an SD-card image build with pi-gen or sdm) the service is enabled, not
# started: it starts on first boot.
# See docs/DEPLOY.md.
# shellcheck disable=SC2119  # lib.sh steps take optional arguments
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_root "$@"
if [[ $(os_field VERSION_CODENAME) != bookworm ]]; then
    log "warning: expected Raspberry Pi OS Bookworm, found '$(os_field PRETTY_NAME)'"
fi
if [[ $(uname -m) != aarch64 ]]; then
    log "warning: expected a 64-bit OS (aarch64), found $(uname -m); ai-edge-litert needs aarch64"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
# picamera2 (and libcamera) come only from apt; the venv sees them via --system-site-packages.
# So do OpenCV (built with GStreamer, unlike pip's wheel) and numpy (the version apt's compiled
# modules were built against): pip's wheels would shadow the system builds and grow the venv
# (184 MB with them, as reported in issue 17; 110 MB without, measured by deploy/test-arm64.sh).
# opencv-data holds the Haar cascades (which pip's OpenCV carries as cv2.data).
apt-get install -y --no-install-recommends python3-picamera2 python3-venv python3-pip \
    python3-opencv python3-numpy opencv-data

ensure_user
make_venv opencv-python-headless numpy
check_system_cv2 "install python3-opencv from apt"
install_config
install_models
install_docs
install_unit
