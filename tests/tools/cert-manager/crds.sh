#!/usr/bin/env bash
# Print the directory holding cert-manager's CRDs (deploy/crds/*.yaml) from its Go module at the
# version pinned in go.mod, downloaded into the Go module cache (a second run is instant).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(awk '$1 == "require" && $2 == "github.com/cert-manager/cert-manager" {print $3; exit}' "$here/go.mod")"
command -v go >/dev/null || { echo "error: Go is needed to fetch cert-manager's CRDs (https://go.dev/dl)" >&2; exit 1; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
dir="$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "github.com/cert-manager/cert-manager@$version" \
  | awk -F'"' '$2 == "Dir" {print $4; exit}')"
[ -d "$dir/deploy/crds" ] || { echo "error: no deploy/crds in cert-manager $version ($dir)" >&2; exit 1; }
echo "$dir/deploy/crds"
