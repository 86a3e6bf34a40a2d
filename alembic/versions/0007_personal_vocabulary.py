"""A user's vocabulary: the words their corrections taught, as hotwords for their notes.

``vocabulary_words``: one row per (user, word), newest first by id; /vocabolario clears a
user's rows, /forget deletes them with the user (the corrections themselves stay training
data until /forget). ``transcriptions.vocabulary_sha256``: the fingerprint of the hotwords
a transcript was decoded with, so an instant repeat reuses it only for the same words.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import alembic.op as op
import sqlalchemy as sa

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WORD_CHARS = 64
SHA256_HEX_CHARS = 64


def upgrade() -> None:
    op.create_table(
        "vocabulary_words",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("word", sa.String(length=WORD_CHARS), nullable=False),
        sa.Column("word_key", sa.String(length=WORD_CHARS), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_vocabulary_words_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vocabulary_words")),
        sa.UniqueConstraint(
            "user_id", "word_key", name=op.f("uq_vocabulary_words_user_id_word_key")
        ),
    )
    op.create_index(
        op.f("ix_vocabulary_words_user_id"), "vocabulary_words", ["user_id"], unique=False
    )
    with op.batch_alter_table("transcriptions") as batch:
        batch.add_column(
            sa.Column("vocabulary_sha256", sa.String(length=SHA256_HEX_CHARS), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("transcriptions") as batch:
        batch.drop_column("vocabulary_sha256")
    op.drop_table("vocabulary_words")
