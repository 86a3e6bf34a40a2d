"""Button data is attacker-controlled (any 64 bytes): only the exact form a button of this
bot carries is read, as a number SQLite can hold."""

from __future__ import annotations

import pytest

from bot.cancel_button import CANCEL_PREFIX, cancel_markup, cancelled_job_id
from bot.confirm_button import CONFIRM_PREFIX, confirm_markup, confirmed_transcription_id
from bot.handlers.user_commands import FORGET_NO, FORGET_YES, forget_choice
from bot.handlers.vocabulary import CLEAR_ACTION, clear_asker
from tests.support.hostile_inputs import FORGED_NUMBERS

SQLITE_MAX = 2**63 - 1


def _data(markup) -> str:
    return markup.inline_keyboard[0][0].callback_data


@pytest.mark.parametrize("number", FORGED_NUMBERS)
def test_forged_job_and_transcription_ids_are_not_read(number: str) -> None:
    assert cancelled_job_id(f"{CANCEL_PREFIX}{number}") is None
    assert confirmed_transcription_id(f"{CONFIRM_PREFIX}{number}") is None


@pytest.mark.parametrize("number", FORGED_NUMBERS)
def test_forged_askers_are_not_read(number: str) -> None:
    assert forget_choice(f"{FORGET_YES}:{number}") is None
    assert clear_asker(f"{CLEAR_ACTION}:{number}") is None


def test_the_bots_own_buttons_are_read() -> None:
    biggest = 10**18 - 1  # 18 digits: every id the bot sends, and within SQLite's range
    assert biggest < SQLITE_MAX
    for number in (1, 42, biggest):
        assert cancelled_job_id(_data(cancel_markup(number))) == number
        assert confirmed_transcription_id(_data(confirm_markup(number))) == number
    assert cancelled_job_id(None) is None and confirmed_transcription_id(None) is None
    assert forget_choice(f"{FORGET_YES}:1001") == (FORGET_YES, 1001)
    assert forget_choice(f"{FORGET_NO}:1001") == (FORGET_NO, 1001)
    assert forget_choice("forget:maybe:1001") is None
    assert clear_asker(f"{CLEAR_ACTION}:1001") == 1001
    assert clear_asker(None) is None and forget_choice(None) is None
