#!/bin/sh
# The container's entrypoint (also usable on a plain host): bring the database schema up
# to date, then run the chosen role in the foreground, as PID 1's replacement (exec), so
# SIGTERM from `docker stop` reaches whisper-it and it stops cleanly.
#
#   entrypoint.sh bot      the Telegram front (WHISPER_IT_WORKERS=0: accepts jobs only)
#   entrypoint.sh worker   transcription workers on the shared database
#   entrypoint.sh ARGS...  any other whisper-it command (doctor, db current, train, ...)
set -eu

role="${1:-bot}"
[ "$#" -gt 0 ] && shift

case "$role" in
    bot | worker)
        # Migrating here, before the role starts, so a role never runs on an old schema. N
        # containers starting together each run this: the migration holds a lock (a
        # PostgreSQL advisory lock, a file lock beside SQLite's database), so one migrates and the others
        # wait, then find the schema up to date. (Every role also checks it at start.)
        whisper-it db upgrade
        exec whisper-it "$role" "$@"
        ;;
    *)
        exec whisper-it "$role" "$@"
        ;;
esac
