#!/usr/bin/env bash
# Build kube-apiserver and etcd from their Go modules into a cache outside the repository,
# keyed by version. A second run finds the binaries and exits at once.
# Prints the directory holding the binaries on its last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
k8s_version="$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' "$here/apiserver/go.mod")"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2; exit}' "$here/etcd/go.mod")"
cache="${PF_WEBHOOK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pf-webhook}"
out="$cache/controlplane/kubernetes-$k8s_version-etcd-$etcd_version"

if [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ]; then
  echo "control plane binaries already built in $out" >&2
  echo "$out"
  exit 0
fi
command -v go >/dev/null || { echo "error: Go is needed to build the test control plane (https://go.dev/dl)" >&2; exit 1; }
mkdir -p "$out"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

minor="${k8s_version#v1.}"; minor="${minor%%.*}"
stamp() { # $1 = package holding the version variables
  printf -- '-X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean -X %s.buildDate=%s ' \
    "$1" "$k8s_version" "$1" "$1" "$minor" "$1" "$1" "1970-01-01T00:00:00Z"
}
ldflags="-s -w $(stamp k8s.io/component-base/version)$(stamp k8s.io/client-go/pkg/version)"

start=$(date +%s)
echo "building kube-apiserver $k8s_version (a cold build takes several minutes)..." >&2
(cd "$here/apiserver" && go build -trimpath -ldflags "$ldflags" -o "$out/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
echo "building etcd $etcd_version..." >&2
(cd "$here/etcd" && go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3)
mv "$out/kube-apiserver.tmp" "$out/kube-apiserver"
mv "$out/etcd.tmp" "$out/etcd"
echo "built in $(( $(date +%s) - start ))s: $out" >&2
echo "$out"
