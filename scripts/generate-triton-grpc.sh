#!/usr/bin/env bash
# Regenerates the Open Inference Protocol's gRPC code in Sources/BranchyInferenceGRPC: the .proto files
# of Triton's `inference.GRPCInferenceService` (the KServe v2 gRPC API and Triton's extensions, among them
# ModelConfig, which perf_analyzer asks for) and the Swift code protoc makes of them. The output is
# committed, so that the build needs only the runtime libraries, not the plugins.
#   proto/model_config.proto, proto/grpc_service.proto: printed from the FileDescriptorProtos embedded in
#       the PyPI wheel tritonclient==2.41.1 (tritonclient/grpc/{model_config,service}_pb2.py; the wheel
#       has no .proto files, and the descriptors carry no comments), then checked: what protoc builds from
#       the printed files must equal the embedded descriptors.
#   Generated/model_config.pb.swift, Generated/grpc_service.pb.swift: protoc-gen-swift 1.39.0.
#   Generated/grpc_service.grpc.swift: server and client stubs, protoc-gen-grpc-swift-2 2.4.1.
# Keep the versions equal to those Package.swift pins. Installs protobuf-compiler when protoc is missing;
# WORK (default /tmp/branchy-triton-grpc) holds a venv, the wheel and the plugins' build (~3 minutes).
# usage: generate-triton-grpc.sh [--skip-reconstruct]   (keep the .proto files as they are)
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

reconstruct=1
case "${1:-}" in
    --skip-reconstruct) reconstruct=0 ;;
    "") ;;
    *) echo "usage: $(basename "$0") [--skip-reconstruct]" >&2; exit 2 ;;
esac
OUT="$REPO_ROOT/Sources/BranchyInferenceGRPC"
TOOLS="$REPO_ROOT/scripts/lib/triton_proto"
WORK="${WORK:-/tmp/branchy-triton-grpc}"
TRITONCLIENT_VERSION=2.41.1
TRITONCLIENT_WHEEL_SHA256=22ad56ae5ab25518862dec85af0a8246a32a1e14e2ee1d86f1444ce432c254e1
PYPROTOBUF_VERSION=4.25.9
SWIFT_PROTOBUF_VERSION=1.39.0
GRPC_SWIFT_PROTOBUF_VERSION=2.4.1
GRPC_SWIFT_2_VERSION=2.4.3
mkdir -p "$WORK"
ensure_packages protoc:protobuf-compiler python3:python3

if [ "$reconstruct" = 1 ]; then
    ensure_venv "$WORK/venv" "protobuf==$PYPROTOBUF_VERSION"
    "$WORK/venv/bin/pip" download -q "tritonclient==$TRITONCLIENT_VERSION" --no-deps --only-binary=:all: -d "$WORK/wheels"
    whl="$WORK/wheels/tritonclient-$TRITONCLIENT_VERSION-py3-none-manylinux1_x86_64.whl"
    echo "$TRITONCLIENT_WHEEL_SHA256  $whl" | sha256sum -c - >&2
    rm -rf "$WORK/wheel" && mkdir -p "$WORK/wheel"
    pb2="tritonclient-$TRITONCLIENT_VERSION.data/purelib/tritonclient/grpc"
    (cd "$WORK/wheel" && python3 -m zipfile -e "$whl" .)
    "$WORK/venv/bin/python" "$TOOLS/extract_descriptors.py" "$WORK/triton.fds.pb" \
        "$WORK/wheel/$pb2/model_config_pb2.py" "$WORK/wheel/$pb2/service_pb2.py"
    "$WORK/venv/bin/python" "$TOOLS/fds_to_proto.py" "$WORK/triton.fds.pb" "$OUT/proto" \
"// Triton Inference Server gRPC API (KServe Open Inference Protocol v2 + Triton extensions).
// Printed by scripts/generate-triton-grpc.sh from the FileDescriptorProtos embedded in
// $pb2/{model_config,service}_pb2.py
// of the PyPI wheel tritonclient==$TRITONCLIENT_VERSION. The original comments are not in the wheel."
    protoc -I"$OUT/proto" --include_imports --descriptor_set_out="$WORK/roundtrip.fds.pb" grpc_service.proto
    "$WORK/venv/bin/python" "$TOOLS/roundtrip_check.py" "$WORK/triton.fds.pb" "$WORK/roundtrip.fds.pb" >&2
fi

P="$WORK/plugins"
mkdir -p "$P/Sources/Dummy"
echo "public let dummy = 0" > "$P/Sources/Dummy/Dummy.swift"
cat > "$P/Package.swift" <<SWIFT
// swift-tools-version:6.1
import PackageDescription
let package = Package(
  name: "plugins",
  dependencies: [
    .package(url: "https://github.com/apple/swift-protobuf.git", exact: "$SWIFT_PROTOBUF_VERSION"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", exact: "$GRPC_SWIFT_PROTOBUF_VERSION"),
    .package(url: "https://github.com/grpc/grpc-swift-2.git", exact: "$GRPC_SWIFT_2_VERSION"),
  ],
  targets: [.target(name: "Dummy", path: "Sources/Dummy")]
)
SWIFT
GEN_SWIFT="$P/.build/release/protoc-gen-swift"
GEN_GRPC="$P/.build/release/protoc-gen-grpc-swift-2"
if [ ! -x "$GEN_SWIFT" ] || [ "$("$GEN_SWIFT" --version)" != "protoc-gen-swift $SWIFT_PROTOBUF_VERSION" ]; then
    say "building protoc-gen-swift $SWIFT_PROTOBUF_VERSION (slow)"
    (cd "$P" && swift build -c release --product protoc-gen-swift >&2)
fi
if [ ! -x "$GEN_GRPC" ] || [ "$("$GEN_GRPC" --version)" != "protoc-gen-grpc-swift-2 $GRPC_SWIFT_PROTOBUF_VERSION" ]; then
    say "building protoc-gen-grpc-swift-2 $GRPC_SWIFT_PROTOBUF_VERSION (slow)"
    (cd "$P" && swift build -c release --product protoc-gen-grpc-swift-2 >&2)
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
protoc -I"$OUT/proto" --plugin=protoc-gen-swift="$GEN_SWIFT" --swift_out="$tmp" --swift_opt=Visibility=Public \
    model_config.proto grpc_service.proto
protoc -I"$OUT/proto" --plugin=protoc-gen-grpc-swift-2="$GEN_GRPC" --grpc-swift-2_out="$tmp" \
    --grpc-swift-2_opt=Visibility=Public,Server=true,Client=true grpc_service.proto
mkdir -p "$OUT/Generated"
mv "$tmp"/model_config.pb.swift "$tmp"/grpc_service.pb.swift "$tmp"/grpc_service.grpc.swift "$OUT/Generated/"
say "wrote $OUT/Generated/{model_config.pb,grpc_service.pb,grpc_service.grpc}.swift"
