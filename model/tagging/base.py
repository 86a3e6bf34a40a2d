"""What every tagger is: the ``Tagger`` protocol, the "off" tagger and shared defaults.

Kept apart from ``tags`` (text2tags, hashtag formatting) so that ``keywords`` can build on
it without importing the module that loads it.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

TaggerChoice = Literal["auto", "text2tags", "keywords", "off"]
DEFAULT_MAX_TAGS = 5


class TaggerUnavailable(Exception):
    """The requested tagger cannot run (model not cached, no Hub access, bad model id...)."""


@runtime_checkable
class Tagger(Protocol):
    """Produces raw tags (not yet hashtags) for a transcript, best first."""

    name: str

    def tags(self, text: str) -> list[str]: ...


class NullTagger:
    """Tagging turned off."""

    name = "off"

    def tags(self, text: str) -> list[str]:
        return []
