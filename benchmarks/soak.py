"""Months in minutes: does the bot's memory stay flat over thousands of requests?

The real bot (``bot.app.build_application``: handlers, the durable queue on SQLite, the
decoding sandbox, delivery, corrections, the rate limiter, the queue display) runs
in-process against the loopback Bot API emulator, with a stand-in model that answers at
once (``tests/support/held_transcriber.py``): what is measured is the bot, not Whisper.
Many users (private chats, and members of groups) send voice notes; every fifth reply is
corrected, every tenth user opens /impostazioni, some press "✅ Giusto".

At evenly spaced checkpoints after a warm-up, the live Python objects are counted by type
(after a full garbage collection): a type whose count keeps rising with the number of
requests is a leak (a map keyed by user, chat or job that never forgets, tasks or events
never released). The emulator keeps every message and call it saw, so its own types
(``_Record``, ``ApiCall``, ``_StoredFile``) and the dicts and strings they hold grow by
design. RSS is shown too (it includes the emulator's records). ``tracemalloc`` was tried
first: it slowed the bot eightfold, enough to exhaust PTB's connection pool.

    .venv/bin/python benchmarks/soak.py [--jobs 2000] [--users 400]

Writes ``benchmarks/results/soak.json`` and ``soak.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import _common  # noqa: E402

RESULT_NAME = "soak"
DEFAULT_JOBS = 2000
DEFAULT_USERS = 400
CHECKPOINTS = 5  # snapshots after the warm-up, evenly spaced
WARMUP_SHARE = 0.2
IN_FLIGHT = 16  # notes sent before waiting for their answers
FIRST_USER = 50_000
GROUPS = (-100_900, -100_901, -100_902)
TOP_TYPES = 15
REPLY_TIMEOUT = 120.0


def _rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 / 2**20


def _live_objects() -> Counter[str]:
    gc.collect()
    return Counter(
        f"{type(item).__module__}.{type(item).__qualname__}" for item in gc.get_objects()
    )


async def _one_batch(bot, notes: list[tuple[int, int | None]], first: int) -> int:
    """Send one note per (user, group or None) and wait for every answer; then correct
    every fifth and open /impostazioni for every tenth. Returns how many were answered."""
    from tests.support.worker_support import tone_wav

    emu = bot.emu
    sent = []
    for offset, (user, group) in enumerate(notes):
        number = first + offset
        chat = user if group is None else group
        where = {} if group is None else {"chat_id": group, "chat_type": "supergroup"}
        caption = None if group is None else f"@{emu.bot_username}"
        # A different tone each time: the same audio again would be answered from its
        # stored transcript (instant repeats) without the pipeline.
        clip = tone_wav(1.5, frequency=200 + number % 1500)
        note = emu.send_voice(user_id=user, data=clip, duration=2, caption=caption, **where)
        sent.append((user, chat, where, note["message_id"], number))

    def replies() -> dict[tuple[int, int], int] | None:
        found = {}
        for chat in {item[1] for item in sent}:
            for message in emu.messages(chat):
                if message.reply_to is not None and "trascrizione" in (message.content or ""):
                    found[(chat, message.reply_to)] = message.message_id
        keys = [(chat, note) for _, chat, _, note, _ in sent]
        return found if all(key in found for key in keys) else None

    found = await emu.async_wait_for(replies, timeout=REPLY_TIMEOUT)
    for user, chat, where, note, number in sent:
        if number % 5 == 0:
            text = f"una trascrizione corretta numero {number}"
            emu.send_text(user_id=user, text=text, reply_to=found[(chat, note)], **where)
        if number % 10 == 3:
            emu.send_text(user_id=user, text="/impostazioni", **where)
    return len(sent)


def _requests(jobs: int, users: int) -> list[tuple[int, int | None]]:
    """Who sends the n-th note, and where: users in turn, one note in four in a group."""
    return [
        (FIRST_USER + n % users, GROUPS[n % len(GROUPS)] if n % 4 == 3 else None)
        for n in range(jobs)
    ]


async def _soak(jobs: int, users: int, data_dir: Path) -> list[dict[str, float]]:
    from tests.support.bot_harness import running_bot
    from tests.support.held_transcriber import HeldTranscriber

    plan = _requests(jobs, users)
    warmup = int(jobs * WARMUP_SHARE)
    marks = {warmup + round(i * (jobs - warmup) / CHECKPOINTS) for i in range(CHECKPOINTS + 1)}
    rows: list[dict[str, float]] = []
    started = time.perf_counter()
    async with running_bot(
        data_dir, HeldTranscriber(hold=False), messages_per_minute=1_000_000
    ) as bot:
        for user in range(FIRST_USER, FIRST_USER + users):
            bot.emu.open_chat(user_id=user)
            for group in GROUPS:
                bot.emu.open_chat(user_id=user, chat_id=group, chat_type="supergroup")
        done = 0
        while done < jobs:
            batch = plan[done : done + IN_FLIGHT]
            done += await _one_batch(bot, batch, done)
            if any(done - len(batch) < mark <= done for mark in marks):
                await asyncio.sleep(0.5)  # corrections and settings of the batch land
                counts = _live_objects()
                rows.append(
                    {
                        "requests": done,
                        "objects": sum(counts.values()),
                        "rss_mib": _rss_mib(),
                        "seconds": time.perf_counter() - started,
                    }
                )
                _COUNTS.append(counts)
                print(f"{done} requests: {rows[-1]}", flush=True)
    return rows


_COUNTS: list[Counter[str]] = []


def _growing_types(first: Counter[str], last: Counter[str], requests: int) -> list[list[object]]:
    """The types whose live count grew most, per 1,000 requests."""
    growth = {name: last[name] - first[name] for name in last}
    top = sorted(growth.items(), key=lambda item: item[1], reverse=True)[:TOP_TYPES]
    return [
        [name, first[name], last[name], f"{1000 * grown / requests:+.1f}"]
        for name, grown in top
        if grown > 0
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS)
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    args = parser.parse_args()
    info = _common.machine_info()
    with tempfile.TemporaryDirectory(prefix="soak-", ignore_cleanup_errors=True) as scratch:
        rows = asyncio.run(_soak(args.jobs, args.users, Path(scratch)))
    first, last = rows[0], rows[-1]
    span = last["requests"] - first["requests"]
    per_thousand = 1000 * (last["objects"] - first["objects"]) / span
    types = _growing_types(_COUNTS[0], _COUNTS[-1], span)
    data = {
        "machine": info,
        "jobs": args.jobs,
        "users": args.users,
        "checkpoints": rows,
        "objects_per_1000_requests": per_thousand,
        "growing_types": types,
    }
    table = _common.markdown_table(
        ["requests answered", "live Python objects", "process RSS (MiB)", "s"],
        [[r["requests"], r["objects"], f"{r['rss_mib']:.0f}", f"{r['seconds']:.0f}"] for r in rows],
    )
    markdown = (
        "# Soak: memory over many requests\n\n"
        f"{args.jobs} voice notes from {args.users} users (one in four in a group), every "
        "fifth transcript corrected, /impostazioni for every tenth; the real bot in-process "
        "with a stand-in model (see the script's docstring). Machine: "
        f"{info.get('cpu', '?')}, commit {info.get('git_commit', '?')}.\n\n"
        + table
        + f"\nLive objects after the warm-up: {per_thousand:+.0f} per 1,000 requests. "
        "The types that grew most from the first checkpoint to the last (the emulator's "
        "records of every message and call, and their dicts and strings, grow by "
        "design):\n\n"
        + _common.markdown_table(["type", "first", "last", "per 1,000 requests"], types)
    )
    _common.write_results(RESULT_NAME, data, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
