#!/usr/bin/env bash
# Set up a fresh machine for the tests (see scripts/setup.sh), then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
