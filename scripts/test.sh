#!/usr/bin/env bash
# Cantor's test command (README.md). Installs what the tests need on a fresh Debian machine
# (the MIT-licensed FluidR3 General MIDI soundfont), then runs every test in the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] && [ -z "${CANTOR_SOUNDFONTS:-}" ]; then
    echo "installing fluid-soundfont-gm (needed by the corpus tests)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq fluid-soundfont-gm
fi

# Inference is pinned to one thread in the product; tests follow suit so timings don't fight.
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}"
cargo test --workspace --no-fail-fast "$@"
