"""``whisper-it db upgrade|downgrade|current``: the database schema's revision.

Only ``upgrade`` creates a SQLite database that does not exist yet; ``current`` and
``downgrade`` fail on a missing one (a mistyped path) instead of making an empty one.
"""

from __future__ import annotations

import argparse

from bot.cli import require_database
from bot.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("db", help="migrate the database schema")
    actions = parser.add_subparsers(dest="db_command", required=True)
    upgrade = actions.add_parser("upgrade", help="upgrade to a revision (default: the newest)")
    upgrade.add_argument("revision", nargs="?", default="head")
    downgrade = actions.add_parser("downgrade", help="downgrade to a revision (default: -1)")
    downgrade.add_argument("revision", nargs="?", default="-1")
    actions.add_parser("current", help="show the database's revision and the newest one")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from storage import migrations

    url = settings.resolved_database_url
    if args.db_command != "upgrade":
        require_database(url)
    if args.db_command == "upgrade":
        migrations.upgrade(url, args.revision)
    elif args.db_command == "downgrade":
        migrations.downgrade(url, args.revision)
    print(f"current: {migrations.current(url) or 'base (empty)'}")
    print(f"head: {migrations.head()}")
    return 0
