#!/usr/bin/env bash
# Install the Debian packages the project's setup and test tiers need, when missing (root, or sudo without a
# password). CI runs it before `make test`; `make test` itself installs nothing from apt.
#   java (Spark), npm (the hub's proxy, installed from its lock by `make chp`), etcd (the test control plane),
#   containerd, runc, CNI plugins, busybox, debootstrap, iptables and a C compiler (the node tier's real node and
#   its images: `make node-images`), podman (builds the images admins deploy from images/*/Dockerfile: `make images`),
#   nftables (`nft`: the node tier reads kube-network-policies' rules with it), chromium and chromium-driver (the
#   model page's test in a headless browser).
# Without root it only says what is missing: the tiers that need a package skip, naming it.
set -euo pipefail

packages=()
command -v java >/dev/null 2>&1 || packages+=(openjdk-17-jre-headless)
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
for p in etcd-server containerd runc containernetworking-plugins busybox-static debootstrap iptables nftables gcc \
  libc6-dev chromium chromium-driver podman; do
  dpkg -s "$p" >/dev/null 2>&1 || packages+=("$p")
done
if [ ${#packages[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! sudo -n true 2>/dev/null; then
    echo "system packages: missing ${packages[*]}; install them as root (apt-get install ${packages[*]})" >&2
    exit 0
  fi
  sudo=(sudo -n)
fi
echo "system packages: installing ${packages[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
