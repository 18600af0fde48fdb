#!/usr/bin/env bash
# Installs the Debian packages semples needs, only when they are missing. Idempotent; used by
# `make test`, `make demo` and .ci/run.
set -euo pipefail

packages=(libopenblas-dev libdnnl2 libpng-dev libjpeg-dev libturbojpeg0-dev libinotifytools0-dev zlib1g-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
    for d in /opt/swift/usr/bin /usr/share/swift/usr/bin; do
        [ -x "$d/swift" ] && { echo "setup: swift found in $d; add it to PATH"; exit 1; }
    done
    echo "setup: a Swift 5.9+ toolchain is required (https://www.swift.org/install/linux/)" >&2
    exit 1
fi
