#!/usr/bin/env bash
# Set up a fresh machine (see scripts/setup.sh), then start the bot. The bot applies its
# database migrations and loads the model at start. Configure it with WHISPER_IT_*
# environment variables or a .env file (README: Configuration).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/whisper-it bot "$@"
