#!/usr/bin/env bash
# Cantor's test command (README.md). Installs what the tests need on a fresh Debian machine,
# then runs every test in the workspace:
# - fluid-soundfont-gm: the MIT-licensed FluidR3 General MIDI soundfont (corpus tests);
# - python3-venv: the VST3 host test installs pedalboard (PyPI) in a virtual environment;
# - xvfb, x11-apps, libasound2-dev, libjack-jackd2-dev: the editor screenshot test builds the
#   stand-alone program and photographs its window on a virtual display.
# The host tests build the plugin bundles themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || [ -n "${CANTOR_SOUNDFONTS:-}" ] || missing+=(fluid-soundfont-gm)
python3 -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
command -v Xvfb >/dev/null || missing+=(xvfb)
command -v xwd >/dev/null || missing+=(x11-apps)
[ -f /usr/include/alsa/asoundlib.h ] || missing+=(libasound2-dev)
pkg-config --exists jack 2>/dev/null || missing+=(libjack-jackd2-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (needed by the tests)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# Inference is pinned to one thread in the product; tests follow suit so timings don't fight.
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}"
cargo test --workspace --no-fail-fast "$@"
