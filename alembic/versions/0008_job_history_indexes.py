"""Indexes for the per-job queries that otherwise grow with the finished jobs kept.

``ix_jobs_status_finished_at``: the waiting-time estimate reads the latest finished jobs
(``storage.queue_eta.recent_throughput``) for every accepted job and every announced one
on each refresh; without it every finished job was sorted (185 ms at 150,000 of them,
about 30 days at 5,000 jobs a day). ``ix_jobs_chat_id_user_message_id``: "already queued"
(``storage.queue_counts.job_for_message``) on every accepted job scanned the table.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import alembic.op as op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {
    "ix_jobs_status_finished_at": ["status", "finished_at"],
    "ix_jobs_chat_id_user_message_id": ["chat_id", "user_message_id"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "jobs", columns, unique=False)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="jobs")
