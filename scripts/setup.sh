#!/usr/bin/env bash
# Installs what forkengine needs to build, test and benchmark on Debian 12.
# Idempotent: quiet and fast when everything is already present.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config ccache python3
  liburing-dev libbtrfsutil-dev libdevmapper-dev nlohmann-json3-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libspdlog-dev libfmt-dev zlib1g-dev libssl-dev libboost1.81-dev libboost-url1.81-dev
  btrfs-progs xfsprogs util-linux e2fsprogs coreutils python3-jsonschema
  qemu-system-x86 linux-image-amd64 busybox-static cpio iproute2
  libsystemd-dev systemd help2man dpkg-dev fakeroot
  prometheus-cpp-dev prometheus python3-httpx etcd-server etcd-client
)

# The TypeScript client's tests (clients/typescript) need node and npm; a machine with NodeSource's
# nodejs (which carries npm) keeps it, any other gets Debian's.
command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$package")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "setup: missing packages (${missing[*]}); run as root to install them" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
