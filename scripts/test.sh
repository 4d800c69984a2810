#!/usr/bin/env bash
# Cantor's test command (README.md). Installs what the tests need on a fresh Debian machine
# (the MIT-licensed FluidR3 General MIDI soundfont, python3-venv), then runs every test in the
# workspace. The host tests build the plugin bundles themselves and install pedalboard in a venv.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] && [ -z "${CANTOR_SOUNDFONTS:-}" ]; then
    echo "installing fluid-soundfont-gm (needed by the corpus tests)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq fluid-soundfont-gm
fi

# The VST3 host test runs pedalboard (PyPI) in a virtual environment it creates; Debian's
# python3 needs python3-venv for that.
if ! python3 -c "import ensurepip, venv" 2>/dev/null; then
    echo "installing python3-venv (needed by the VST3 host test)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv
fi

# Inference is pinned to one thread in the product; tests follow suit so timings don't fight.
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}"
cargo test --workspace --no-fail-fast "$@"
