"""Leases: a claimed job, and a training run, belong to one live process at a time.

A worker that claims a job writes its name and an expiry, and renews the expiry while it
works; only an expired lease is given to someone else. This replaces "requeue every
running job at start", which answered another live instance's jobs twice, and the
training run's local PID, which a container restart could recycle.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import alembic.op as op
import sqlalchemy as sa

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWNER_CHARS = 128
TABLES = ("jobs", "training_runs")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("lease_owner", sa.String(length=OWNER_CHARS)))
            batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True)))
    with op.batch_alter_table("jobs") as batch:
        batch.create_index("ix_jobs_status_lease_expires_at", ["status", "lease_expires_at"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_status_lease_expires_at")
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("lease_expires_at")
            batch.drop_column("lease_owner")
