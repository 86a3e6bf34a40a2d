"""Data only: the general set shipped with whisper-it (``manifest.tsv`` and its Ogg Opus
clips), rendered by ``scripts/render_general_set.py`` and read by ``training.general_set``."""
