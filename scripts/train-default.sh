#!/usr/bin/env bash
# Reproduces the shipped models from the Fashion-MNIST training set:
#   models/b-resnet3 (residual blocks and batch norm, three exits) — the default model
#   models/b-lenet3  (three exits: device, edge, cloud)             — with --lenet3
#   models/b-lenet   (the paper's two-exit layout)                  — with --paper
#   models/b-lenet3-bin (binarised device stage, 1-bit features)    — with --bin
# Installs Debian's dataset-fashion-mnist if the training set is missing.
# usage: scripts/train-default.sh [--lenet3 | --paper | --bin] [extra branchy train options]
set -euo pipefail
cd "$(dirname "$0")/.."

data=/usr/share/datasets/fashion-mnist
if [ ! -e "$data/train-images-idx3-ubyte.gz" ] && [ ! -e "$data/train-images-idx3-ubyte" ]; then
    echo "installing dataset-fashion-mnist (the training set) ..." >&2
    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

# b-resnet3 also trains with random shifts of one pixel and decoupled weight decay 0.05.
extra=()
case "${1:-}" in
    --lenet3) arch=b-lenet3 epochs=20; shift ;;
    --paper) arch=b-lenet epochs=8; shift ;;
    --bin) arch=b-lenet3-bin epochs=25; shift ;;
    *) arch=b-resnet3 epochs=30 extra=(--shift 1 --weight-decay 0.05) ;;
esac

swift build -c release --product branchy >&2
bin="$(swift build -c release --show-bin-path)"
"$bin/branchy" train --arch "$arch" --data "$data" --out "models/$arch" --epochs "$epochs" --seed 1 ${extra[@]+"${extra[@]}"} "$@"
if [ "$arch" = b-lenet3-bin ]; then
    # Thresholds and codecs for the fewest bytes at most 0.5 points below the final exit alone.
    "$bin/branchy" calibrate --model "models/$arch" --topology topology/b-lenet3-bin.yaml --data "$data" --max-accuracy-drop 0.5 --write
fi
