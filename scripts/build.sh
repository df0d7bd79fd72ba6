#!/usr/bin/env bash
# Builds every product of the package (branchy, branchy-device, branchy-edge,
# branchy-cloud, branchy-probe) in release mode, in one `swift build`, and
# prints the folder of the executables on standard output. Build messages go to
# standard error, so other scripts can write:  bin="$(scripts/build.sh)"
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() { echo "usage: $(basename "$0")   (builds all products, -c release; prints the bin path)"; }
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

cd "$REPO_ROOT"
command -v swift >/dev/null 2>&1 || die "the 'swift' command is needed but was not found"

say "building all products (release)"
swift build -c release >&2
bin="$(swift build -c release --show-bin-path)"
for exe in branchy branchy-device branchy-edge branchy-cloud branchy-probe; do
    [ -x "$bin/$exe" ] || die "the build did not produce $bin/$exe"
done
printf '%s\n' "$bin"
