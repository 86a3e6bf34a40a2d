"""Storage: the database (SQLAlchemy 2 + Alembic) and the content-addressed audio store.

Import the submodules you need (``storage.repository``, ``storage.jobs``,
``storage.samples``, ``storage.privacy``, ``storage.audio_store``, ``storage.migrations``).
Nothing here opens a connection or touches the disk at import time.
"""
