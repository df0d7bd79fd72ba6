#!/usr/bin/env bash
# Regenerates Sources/BranchyImport/Generated/onnx.pb.swift from the committed onnx.proto next to it
# (ONNX 1.23.2's schema, proto2, package onnx) with swift-protobuf 1.39.0's protoc-gen-swift, internal
# visibility. The output is committed, so that the build needs only the SwiftProtobuf runtime library,
# not the plugin (~10 minutes to build); run this only after changing onnx.proto or the swift-protobuf
# version (keep it equal to the one Package.swift pins). Installs protobuf-compiler if protoc is missing
# and builds the plugin once in a scratch folder (PLUGIN_DIR, default /tmp/branchy-protoc-gen-swift).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
no_args "regenerates Sources/BranchyImport/Generated/onnx.pb.swift from onnx.proto with protoc-gen-swift 1.39.0" "$@"

VERSION=1.39.0
PLUGIN_DIR="${PLUGIN_DIR:-/tmp/branchy-protoc-gen-swift}"
OUT="$REPO_ROOT/Sources/BranchyImport/Generated"
ensure_packages protoc:protobuf-compiler git:git

plugin="$PLUGIN_DIR/.build/release/protoc-gen-swift"
if [ ! -x "$plugin" ] || [ "$("$plugin" --version)" != "protoc-gen-swift $VERSION" ]; then
    rm -rf "$PLUGIN_DIR"
    git clone --quiet --branch "$VERSION" https://github.com/apple/swift-protobuf.git "$PLUGIN_DIR"
    say "building protoc-gen-swift $VERSION in $PLUGIN_DIR (slow)"
    (cd "$PLUGIN_DIR" && swift build -c release --product protoc-gen-swift >&2)
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$OUT" && protoc --plugin=protoc-gen-swift="$plugin" --swift_out="$tmp" --swift_opt=Visibility=Internal onnx.proto)
mv "$tmp/onnx.pb.swift" "$OUT/onnx.pb.swift"
say "wrote $OUT/onnx.pb.swift"
