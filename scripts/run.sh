#!/usr/bin/env bash
# Set up a fresh machine (see scripts/setup.sh) if not done yet, then start the bot. The
# bot applies its database migrations and loads the model at start. Configure it with WHISPER_IT_*
# environment variables or a .env file (README: Configuration).
set -euo pipefail
cd "$(dirname "$0")/.."
# Set up only once (scripts/setup.sh again updates an existing installation).
[[ -x .venv/bin/whisper-it ]] || scripts/setup.sh
exec .venv/bin/whisper-it bot "$@"
