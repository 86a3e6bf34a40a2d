"""Per-installation secrets, kept in the database with the data they protect."""

from __future__ import annotations

from sqlalchemy.orm import Session

from storage.errors import InvalidStateError
from storage.models import SECRET_SPLIT_SALT, InstallationSecret


def split_salt(session: Session) -> bytes:
    """The secret that keys the train/held-out split (made by migration 0002).

    Missing means the schema was not made by ``alembic upgrade head``: refuse rather than
    invent one, because a new salt would move samples to the other side of the split.
    """
    row = session.get(InstallationSecret, SECRET_SPLIT_SALT)
    if row is None:
        raise InvalidStateError("no split salt in the database: run `whisper-it db upgrade`")
    return bytes.fromhex(row.value)
