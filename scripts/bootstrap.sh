#!/usr/bin/env bash
# Make sure the system tools that the Rust build needs are present.
#
# The only one is `m4`: `gmp-mpfr-sys` (under `rug`) builds GMP from source and
# GMP's configure needs it. A fresh Debian machine lacks it. When we can install
# it (root with apt-get, or sudo without a password) we do; otherwise we say
# exactly what to install and stop.
set -euo pipefail

need=()
command -v m4 >/dev/null 2>&1 || need+=(m4)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v make >/dev/null 2>&1 || need+=(make)
[ ${#need[@]} -eq 0 ] && exit 0

echo "bootstrap: missing system packages: ${need[*]} (needed to build GMP)" >&2
if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            echo "bootstrap: run as root: apt-get install -y ${need[*]}" >&2
            exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq "${need[@]}" >&2
    echo "bootstrap: installed ${need[*]}" >&2
else
    echo "bootstrap: install these with your system's package manager, then rerun: ${need[*]}" >&2
    exit 1
fi
