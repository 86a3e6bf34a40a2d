"""Package layout that ``pyproject.toml`` cannot express on its own.

The migration scripts are authored in the repository's top-level ``alembic/`` folder, but
an installed whisper-it must carry them: they are mapped into the distribution as
``storage/_alembic`` (``storage.migrations`` looks there first). The folder cannot become a
top-level package of its own: one named ``alembic`` would shadow the Alembic library. It has
no ``__init__.py`` for the same reason, so setuptools' ``find`` would skip it; the package
list is therefore built here, where it can combine discovery with the mapped folder.
Everything else (metadata, dependencies, entry points) lives in ``pyproject.toml``.
"""

from setuptools import find_packages, setup

TOP_LEVEL_PACKAGES = ("bot", "model", "training", "storage")
MIGRATIONS_PACKAGE = "storage._alembic"
MIGRATIONS_SOURCE = "alembic"
# Revision scripts: listed as a package so setuptools copies its modules (and does not warn
# about an importable folder left out).
REVISIONS_PACKAGE = f"{MIGRATIONS_PACKAGE}.versions"
# The general set the gate judges by default (training/general_set.py), read in place.
GENERAL_SET_PACKAGE = "training.packaged_general_set"

setup(
    packages=[
        *find_packages(include=[f"{name}*" for name in TOP_LEVEL_PACKAGES]),
        MIGRATIONS_PACKAGE,
        REVISIONS_PACKAGE,
    ],
    # env.py and the revisions are copied as the packages' modules; the template as data.
    package_dir={MIGRATIONS_PACKAGE: MIGRATIONS_SOURCE},
    package_data={
        MIGRATIONS_PACKAGE: ["script.py.mako"],
        GENERAL_SET_PACKAGE: ["manifest.tsv", "*.ogg"],
    },
)
