"""Installation secrets: a random salt, made once per installation, keys the sample split.

The row is written here, by the migration, so every database at head has exactly one
salt from the start: generating it lazily could lose it in a read-only transaction and
silently move every sample to the other side of the split.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import alembic.op as op
import sqlalchemy as sa

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Copied, not imported: a migration must keep meaning what it meant when it was written.
SPLIT_SALT = "split_salt"
SALT_BYTES = 32


def upgrade() -> None:
    table = op.create_table(
        "installation_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_installation_secrets")),
    )
    # Naive UTC, as storage.models.UTCDateTime stores it on SQLite (bulk_insert bypasses it).
    now = datetime.now(UTC)
    if op.get_context().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    op.bulk_insert(
        table,
        [{"name": SPLIT_SALT, "value": secrets.token_hex(SALT_BYTES), "created_at": now}],
    )


def downgrade() -> None:
    op.drop_table("installation_secrets")
