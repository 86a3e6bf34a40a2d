#!/usr/bin/env bash
# Run the tests. With no options: set up a fresh machine (scripts/setup.sh --test), then run
# the whole suite (tests/unit, tests/integration, tests/e2e) — what CI runs.
#
#   scripts/test.sh                  # everything, after the set-up pass
#   scripts/test.sh --fast           # tests/unit only, no set-up pass (needs .venv): ~1 min
#   scripts/test.sh tests/e2e -k bot # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--fast" ]]; then
    shift
    if [[ ! -x .venv/bin/python ]]; then
        echo "test: no .venv yet: run scripts/test.sh once (it sets everything up)" >&2
        exit 2
    fi
    exec .venv/bin/python -m pytest -q -p no:cacheprovider tests/unit "$@"
fi
scripts/setup.sh --test
# Two processes, each taking whole test files (module fixtures are built once): one kept
# only 1.2 of CI's 2 cores busy (tests wait on subprocesses and sockets); two take 14
# minutes on such a machine. The 20 slowest tests close the report: where to look when
# the suite nears its 15 minutes.
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=20 "$@"
