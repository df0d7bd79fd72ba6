#!/usr/bin/env bash
# Reproduces the shipped models from the Fashion-MNIST training set (Debian's dataset-fashion-mnist,
# installed when missing): models/b-resnet3 (the default: residual blocks, batch norm, three exits),
# models/b-lenet3 (--lenet3), models/b-lenet (--paper, the paper's two exits), models/b-lenet3-bin (--bin:
# a binarised device stage with 1-bit features, then calibrated for topology/b-lenet3-bin.yaml).
# usage: scripts/train-default.sh [--lenet3 | --paper | --bin] [extra branchy train options]
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
cd "$REPO_ROOT"
ensure_training_set
extra=()
case "${1:-}" in
    --lenet3) arch=b-lenet3 epochs=20; shift ;;
    --paper) arch=b-lenet epochs=8; shift ;;
    --bin) arch=b-lenet3-bin epochs=25; shift ;;
    *) arch=b-resnet3 epochs=30 extra=(--shift 1 --weight-decay 0.05) ;;   # random one-pixel shifts, decoupled weight decay
esac
swift build -c release --product branchy >&2
bin="$(swift build -c release --show-bin-path)"
"$bin/branchy" train --arch "$arch" --data "$TRAINING_SET" --out "models/$arch" --epochs "$epochs" --seed 1 ${extra[@]+"${extra[@]}"} "$@"
# Thresholds and codecs for the fewest bytes at most 0.5 points below the final exit alone.
[ "$arch" != b-lenet3-bin ] || "$bin/branchy" calibrate --model "models/$arch" --topology topology/b-lenet3-bin.yaml --data "$TRAINING_SET" --max-accuracy-drop 0.5 --write
