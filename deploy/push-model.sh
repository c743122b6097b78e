#!/usr/bin/env bash
# Push a converted model to a device and switch the service to it.
#
#   deploy/push-model.sh [options] MODEL.tflite [user@]host
#
# MODEL.json (written by fer-convert beside the model) must be present (or given with --meta):
# its sha256 must match the model file. The model is copied to a staging folder on the device,
# its sha256 is checked there, and `fer-edge info --json` on the device must read the same
# sha256 and the same metadata (architecture, labels, input shape, preprocessing contract).
# Only then is it installed as /opt/fer-edge/models/<stem>-<sha12>.tflite and the link
# /opt/fer-edge/models/current.tflite (model.path in /etc/fer-edge/config.toml) is switched
# atomically (rename of a symlink); the previous target stays as previous.tflite for rollback.
# Any mismatch refuses the push and leaves the device untouched. Re-pushing the same model is a
# no-op apart from the restart.
#
# Options:
#   --meta FILE        sidecar JSON (default: MODEL with .json)
#   --no-restart       install but do not restart fer-edge.service
#   --no-sudo          run remote commands without sudo (when logging in as root)
#   --models-dir DIR   device model folder (default /opt/fer-edge/models)
#   --fer-edge CMD     fer-edge command on the device (default /opt/fer-edge/venv/bin/fer-edge)
#   -h, --help         this text
# Environment: SSH / SCP override the ssh and scp commands (e.g. SSH="ssh -p 2222"; word-split).
set -euo pipefail

SSH=${SSH:-ssh}
SCP=${SCP:-scp}
META=""
RESTART=1
SUDO=sudo
MODELS_DIR=/opt/fer-edge/models
FER_EDGE=/opt/fer-edge/venv/bin/fer-edge

log() { printf 'push-model: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }

args=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --meta) META=${2:?--meta needs a file}; shift 2 ;;
        --no-restart) RESTART=0; shift ;;
        --no-sudo) SUDO=""; shift ;;
        --models-dir) MODELS_DIR=${2:?--models-dir needs a folder}; shift 2 ;;
        --fer-edge) FER_EDGE=${2:?--fer-edge needs a command}; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) args+=("$1"); shift ;;
    esac
done
[[ ${#args[@]} -eq 2 ]] || { usage; die "expected MODEL.tflite and [user@]host"; }
MODEL=${args[0]}
HOST=${args[1]}
[[ -f $MODEL ]] || die "model $MODEL does not exist"
[[ $MODEL == *.tflite ]] || die "model $MODEL is not a .tflite file"
META=${META:-${MODEL%.tflite}.json}
[[ -f $META ]] || die "metadata $META does not exist (fer-convert writes it beside the model)"
command -v python3 >/dev/null || die "python3 is needed on this machine to compare metadata"

read -r -a ssh_cmd <<<"$SSH"
read -r -a scp_cmd <<<"$SCP"
remote() { "${ssh_cmd[@]}" "$HOST" "$@"; }
q() { printf '%q' "$1"; }

sha=$(sha256sum "$MODEL" | cut -d' ' -f1)
meta_sha=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("sha256", ""))' "$META") ||
    die "$META is not valid JSON"
[[ $meta_sha == "$sha" ]] ||
    die "sha256 of $MODEL ($sha) does not match $META ($meta_sha): refusing"
stem=$(basename "${MODEL%.tflite}")
[[ $stem =~ ^[A-Za-z0-9._-]+$ ]] || die "model name $stem must use only letters, digits, . _ -"
name="$stem-${sha:0:12}"
log "model $MODEL sha256 $sha -> $HOST:$MODELS_DIR/$name.tflite"

stage=$(remote "mktemp -d /tmp/fer-edge-push.XXXXXX") || die "cannot reach $HOST over ssh"
[[ $stage == /tmp/fer-edge-push.* ]] || die "unexpected staging folder '$stage' on $HOST"
cleanup() { remote "rm -rf $(q "$stage")" || log "warning: could not remove $HOST:$stage"; }
trap cleanup EXIT

"${scp_cmd[@]}" -q "$MODEL" "$HOST:$stage/$name.tflite"
"${scp_cmd[@]}" -q "$META" "$HOST:$stage/$name.json"

remote_sha=$(remote "sha256sum $(q "$stage/$name.tflite")" | cut -d' ' -f1)
[[ $remote_sha == "$sha" ]] || die "copy is corrupt on $HOST (sha256 $remote_sha): refusing"

info=$(mktemp)
trap 'rm -f "$info"; cleanup' EXIT
# FER_EDGE is a command line on purpose (e.g. "python3 -m edge"): word-split by the remote shell.
remote "$FER_EDGE info $(q "$stage/$name.tflite") --json" >"$info" ||
    die "fer-edge on $HOST rejects the model (see the message above): refusing"
python3 - "$info" "$META" "$sha" <<'PY' || die "device metadata does not match $META: refusing"
import json
import sys

info = json.load(open(sys.argv[1]))
side = json.load(open(sys.argv[2]))
sha = sys.argv[3]
problems = []
if info.get("sha256") != sha:
    problems.append(f"sha256 on device {info.get('sha256')} != {sha}")
meta = info.get("metadata", {})
for key in ("format_version", "arch", "labels", "input_shape", "contract"):
    if meta.get(key) != side.get(key):
        problems.append(f"{key}: device reads {meta.get(key)!r}, {sys.argv[2]} says {side.get(key)!r}")
for p in problems:
    print("push-model: " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
log "verified on $HOST: sha256 and metadata match"

# Install: copy into the models folder under a unique name, then swap the link by rename(2),
# so the service never sees a half-written model or a missing link.
dir=$(q "$MODELS_DIR")
remote "set -e; $SUDO install -d -m 0755 $dir
  $SUDO install -m 0644 $(q "$stage/$name.tflite") $dir/$(q "$name.tflite")
  $SUDO install -m 0644 $(q "$stage/$name.json") $dir/$(q "$name.json")
  old=\$(readlink $dir/current.tflite || true)
  if [ -n \"\$old\" ] && [ \"\$old\" != $(q "$name.tflite") ]; then
    $SUDO ln -sfn \"\$old\" $dir/.previous.tmp && $SUDO mv -Tf $dir/.previous.tmp $dir/previous.tflite
  fi
  $SUDO ln -sfn $(q "$name.tflite") $dir/.current.tmp
  $SUDO mv -Tf $dir/.current.tmp $dir/current.tflite"
log "installed; $MODELS_DIR/current.tflite -> $name.tflite"

if [[ $RESTART == 1 ]]; then
    remote "$SUDO systemctl restart fer-edge.service && sleep 3 && systemctl is-active --quiet fer-edge.service" ||
        die "fer-edge.service did not come back: journalctl -u fer-edge on $HOST; roll back with: ln -sfn \$(readlink $MODELS_DIR/previous.tflite) ... (see docs/DEPLOY.md)"
    log "fer-edge.service restarted on $HOST"
fi
