#!/usr/bin/env bash
# Installs every Debian package drover's build, tests and benchmarks need.
# Idempotent and quick when everything is present: apt is only called for
# packages that are missing.
set -euo pipefail

PKGS=(
  build-essential meson ninja-build pkg-config clang clang-format cppcheck
  libclang-rt-14-dev
  libuv1-dev libnghttp2-dev libssl-dev openssl
  libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
  libjansson-dev libyaml-dev libsqlite3-dev libcmocka-dev zlib1g-dev
  libcurl4-openssl-dev libpcre2-dev docker.io busybox-static
  python3 python3-pytest python3-grpcio python3-grpc-tools python3-protobuf
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
