"""Confirmed labels: the "✅ Giusto" button under a transcript.

``corrections.kind``: ``correction`` (a user's corrected text: the clip exists because a
model's transcript was wrong) or ``confirmation`` (the transcript itself, confirmed as
right by the audio's sender). Training uses both; the gate tells them apart, since only
corrections are selected on the serving model's errors. Existing rows are corrections.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import alembic.op as op
import sqlalchemy as sa

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KIND_CHARS = 32


def upgrade() -> None:
    with op.batch_alter_table("corrections") as batch:
        batch.add_column(
            sa.Column(
                "kind",
                sa.String(length=KIND_CHARS),
                nullable=False,
                server_default="correction",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("corrections") as batch:
        batch.drop_column("kind")
