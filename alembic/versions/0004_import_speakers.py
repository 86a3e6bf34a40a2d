"""Speakers of imported samples: ``samples import`` may name each row's speaker.

Imported samples all belong to the system import user; the gate clusters clips by speaker
(``training.gate_stats``), so an import names who speaks in an optional third TSV column,
kept here. NULL: not named (users' own transcriptions never need it).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import alembic.op as op
import sqlalchemy as sa

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SPEAKER_CHARS = 128


def upgrade() -> None:
    with op.batch_alter_table("transcriptions") as batch:
        batch.add_column(sa.Column("speaker", sa.String(length=SPEAKER_CHARS)))


def downgrade() -> None:
    with op.batch_alter_table("transcriptions") as batch:
        batch.drop_column("speaker")
