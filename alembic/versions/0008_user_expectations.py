"""What users of transcription bots expect: cancelling a job, instant repeats.

``jobs.cancel_requested``: the job's sender pressed "Annulla" while a worker (in any
process) was working on it; the worker checks the flag and stops. An index on
``transcriptions.source_ref`` finds a forwarded Telegram file's stored transcript.

Revision ID: 0008
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import alembic.op as op
import sqlalchemy as sa

revision: str = "0008"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("transcriptions") as batch:
        batch.create_index("ix_transcriptions_source_ref", ["source_ref"])


def downgrade() -> None:
    with op.batch_alter_table("transcriptions") as batch:
        batch.drop_index("ix_transcriptions_source_ref")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("cancel_requested")
