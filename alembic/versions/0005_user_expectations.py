"""What users of transcription bots expect: cancelling a job, instant repeats, settings.

``jobs.cancel_requested``: the job's sender pressed "Annulla" while a worker (in any
process) was working on it; the worker checks the flag and stops. An index on
``transcriptions.source_ref`` finds a forwarded Telegram file's stored transcript.
``chat_settings``: what a chat chose with /impostazioni (output form, hashtags, and in
groups "transcribe every voice note" and the admins-only lock).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import alembic.op as op
import sqlalchemy as sa

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


KIND_CHARS = 32


def upgrade() -> None:
    op.create_table(
        "chat_settings",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("output", sa.String(length=KIND_CHARS), nullable=False),
        sa.Column("hashtags", sa.Boolean(), nullable=False),
        sa.Column("transcribe_all", sa.Boolean(), nullable=False),
        sa.Column("admins_only", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", name=op.f("pk_chat_settings")),
    )
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("transcriptions") as batch:
        batch.create_index("ix_transcriptions_source_ref", ["source_ref"])


def downgrade() -> None:
    op.drop_table("chat_settings")
    with op.batch_alter_table("transcriptions") as batch:
        batch.drop_index("ix_transcriptions_source_ref")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("cancel_requested")
