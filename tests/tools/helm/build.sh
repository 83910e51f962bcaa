#!/usr/bin/env bash
# Build helm from its Go module into a cache outside the repository, keyed by version.
# A second run finds the binary and exits at once. Prints the binary's path on its last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(awk '$1 == "helm.sh/helm/v3" {print $2; exit}' "$here/go.mod")"
cache="${PF_WEBHOOK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pf-webhook}"
client_go="$(awk '$1 == "k8s.io/client-go" {print $2; exit}' "$here/go.mod")"
k8s_minor="${client_go#v0.}"; k8s_minor="${k8s_minor%%.*}"
out="$cache/helm/$version-k8s1.$k8s_minor"

if [ -x "$out/helm" ]; then
  echo "helm already built in $out" >&2
  echo "$out/helm"
  exit 0
fi
command -v go >/dev/null || { echo "error: Go is needed to build helm for the chart tests (https://go.dev/dl)" >&2; exit 1; }
mkdir -p "$out"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
start=$(date +%s)
echo "building helm $version..." >&2
# the same stamps as helm's own Makefile: its version, and the Kubernetes version that
# `helm template` and `helm lint` assume (from the client-go it is built with)
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
(cd "$here" && go build -trimpath -ldflags "$ldflags" -o "$out/helm.tmp" helm.sh/helm/v3/cmd/helm)
mv "$out/helm.tmp" "$out/helm"
echo "built in $(( $(date +%s) - start ))s: $out/helm" >&2
echo "$out/helm"
