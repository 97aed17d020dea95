#!/usr/bin/env bash
# Build faultserver's container image from this checkout, with podman or docker (whichever
# is here; ENGINE=docker or ENGINE=podman chooses). The image is built, not pulled: no
# registry serves it. Push it to your own registry for a cluster, e.g.
#   scripts/build-image.sh registry.example/chaos/faultserver:0.1.0 && docker push registry.example/chaos/faultserver:0.1.0
#
#   usage: scripts/build-image.sh [TAG]      (default tag: faultserver:VERSION from pyproject.toml)
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
tag=${1:-faultserver:${version:-dev}}

engine=${ENGINE:-}
if [ -z "$engine" ]; then
  for candidate in podman docker; do
    if command -v "$candidate" >/dev/null 2>&1; then engine=$candidate; break; fi
  done
fi
if [ -z "$engine" ]; then
  echo "build-image: no container engine: install podman or docker (or set ENGINE)" >&2
  exit 2
fi

echo "build-image: $engine build -t $tag -f Containerfile ." >&2
"$engine" build -t "$tag" -f Containerfile .
echo "build-image: built $tag; try: $engine run --rm -p 8080:8080 $tag" >&2
