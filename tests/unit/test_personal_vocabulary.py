"""A user's vocabulary (issue 21): which words a correction teaches, the caps that keep
untrusted text harmless, how the words are stored, cleared and forgotten, and that an
instant repeat is keyed by the words a transcript was decoded with."""

from __future__ import annotations

from dataclasses import fields, replace

from bot.job_payloads import LinkJob, TelegramFileJob, from_record, to_record
from bot.vocabulary import PersonalVocabulary
from model.asr.hotwords import (
    MAX_PROMPT_CHARS,
    MAX_WORD_CHARS,
    MAX_WORDS_PER_CORRECTION,
    corrected_words,
    hotwords_prompt,
    remember_words,
    safe_words,
    vocabulary_key,
)
from storage import jobs, repeats, repository, vocabulary
from storage.audio_store import AudioStore
from storage.privacy import delete_user_data
from storage.unit_of_work import Database

USER, OTHER = 101, 202


def test_inserted_and_substituted_words_without_stop_words_as_written() -> None:
    heard = "ho visto marco a bergamo con la gondola"
    fixed = "Ho visto Markus a Bergamo con la gondola del signor Brambilla, ieri."
    # Case alone ("bergamo" -> "Bergamo") teaches nothing; "del", "ieri" are stop words.
    assert corrected_words(heard, fixed) == ["Markus", "signor", "Brambilla"]
    assert corrected_words(fixed, fixed) == []
    # Deleted words teach nothing; a word is taught once.
    assert corrected_words("Lerici Lerici mare", "mare Spinnaker spinnaker") == ["Spinnaker"]
    # Elisions split at the apostrophe; hyphenated names stay whole; digits alone do not count.
    assert corrected_words("", "l'Emilia-Romagna nel 2024") == ["Emilia-Romagna"]


def test_hostile_correction_text_teaches_only_plain_bounded_words() -> None:
    assert corrected_words("ciao", "ciao <|en|> Pippo") == []
    assert corrected_words("ciao", "ciao <|endoftext|>") == []
    assert corrected_words("ciao", "Pippo |> <| Pluto") == []
    marked = corrected_words("ciao", 'ciao <b>Grassetto</b> <a href="x">Collegamento</a> &amp;')
    assert marked == ["Grassetto", "href", "Collegamento", "amp"]
    assert all("<" not in word and ">" not in word and "&" not in word for word in marked)
    long_word = "a" * (MAX_WORD_CHARS + 1)
    assert corrected_words("", f"{long_word} Corto") == ["Corto"]
    many = " ".join(f"Parola{chr(ord('a') + i)}" for i in range(26))
    assert len(corrected_words("", many)) == MAX_WORDS_PER_CORRECTION
    # Stored words are checked again before they reach the model or a reply.
    assert safe_words(["Buono", "<|en|>", "<b>", "x" * 40, "due parole", "ok"]) == [
        "Buono",
        "ok",
    ]


def test_vocabulary_is_newest_first_capped_and_the_prompt_bounded() -> None:
    words = remember_words([], ["Uno", "Due"], cap=3)
    words = remember_words(words, ["Tre", "uno"], cap=3)
    assert words == ["Tre", "uno", "Due"]
    assert remember_words(words, ["Quattro"], cap=3) == ["Quattro", "Tre", "uno"]
    prompt = hotwords_prompt([f"Parola{i:03d}" for i in range(200)])
    assert prompt is not None and len(prompt) <= MAX_PROMPT_CHARS
    assert prompt.startswith("Parola000 Parola001")
    assert hotwords_prompt([]) is None and hotwords_prompt(["<|en|>"]) is None
    assert vocabulary_key(None) is None and vocabulary_key("") is None
    assert vocabulary_key("Zanchettin") != vocabulary_key("Zanchettin Lerici")


def test_stored_words_newest_first_capped_cleared_and_forgotten(
    database: Database, store: AudioStore
) -> None:
    with database.unit_of_work() as uow:
        for user in (USER, OTHER):
            repository.touch_user(uow.session, user)
        vocabulary.remember(uow.session, USER, ["Zanchettin", "Valbondione"], cap=3)
        vocabulary.remember(uow.session, USER, ["piroclastico", "zanchettin"], cap=3)
        vocabulary.remember(uow.session, OTHER, ["Lerici"], cap=3)
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        assert vocabulary.words(uow.session, USER, limit=10) == [
            "piroclastico",
            "zanchettin",
            "Valbondione",
        ]
    with database.unit_of_work() as uow:
        vocabulary.remember(uow.session, USER, ["Scognamiglio"], cap=3)
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        assert vocabulary.words(uow.session, USER, limit=10) == [
            "Scognamiglio",
            "piroclastico",
            "zanchettin",
        ]
    service = PersonalVocabulary(database, enabled=True, max_words=3)
    assert service.hotwords(USER) == "Scognamiglio piroclastico zanchettin"
    assert service.clear(USER) == 3 and service.words(USER) == []
    assert service.words(OTHER) == ["Lerici"]
    with database.unit_of_work() as uow:
        delete_user_data(uow.session, store, OTHER)
        uow.commit()
    assert service.words(OTHER) == []


def test_a_job_carries_its_senders_words_and_only_when_the_note_is_theirs(
    database: Database,
) -> None:
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, USER)
        vocabulary.remember(uow.session, USER, ["Valbondione"], cap=30)
        uow.commit()
    service = PersonalVocabulary(database, enabled=True, max_words=30)
    note = TelegramFileJob(source_kind="voice", file_id="f", file_unique_id="u")
    assert service.personalise(note, USER).hotwords == "Valbondione"
    assert service.personalise(note, OTHER).hotwords is None
    assert service.personalise(LinkJob("https://youtu.be/x"), USER).hotwords == "Valbondione"
    # /trascrivi on someone else's note: the transcript is the author's, so no words.
    theirs = replace(note, by_requester=False, author_id=OTHER)
    assert service.personalise(theirs, USER).hotwords is None
    off = PersonalVocabulary(database, enabled=False, max_words=30)
    assert off.personalise(note, USER).hotwords is None


def test_a_repeat_is_found_only_with_the_same_words(database: Database) -> None:
    key = vocabulary_key("Valbondione")
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, USER)
        for vocabulary_sha256 in (key, None):
            repository.add_transcription(
                uow.session,
                source_kind="voice",
                source_ref=f"file-{vocabulary_sha256}",
                text=f"testo {vocabulary_sha256}",
                user_id=USER,
                audio=None,
                model_version="m",
                vocabulary_sha256=vocabulary_sha256,
            )
        uow.commit()
    from sqlalchemy import update

    from storage.models import Transcription

    with database.unit_of_work() as uow:
        uow.session.execute(update(Transcription).values(audio_sha256="0" * 64))
        uow.commit()
    find = repeats.find_reusable
    with database.unit_of_work(read_only=True) as uow:
        session = uow.session
        personal = f"file-{key}"
        assert find(session, model_version="m", file_unique_id=personal) is None
        found = find(session, model_version="m", file_unique_id=personal, vocabulary_sha256=key)
        assert found is not None and found.vocabulary_sha256 == key
        plain = find(session, model_version="m", audio_sha256="0" * 64)
        assert plain is not None and plain.vocabulary_sha256 is None
        other = vocabulary_key("Lerici")
        assert (
            find(session, model_version="m", audio_sha256="0" * 64, vocabulary_sha256=other) is None
        )


def test_clearing_also_scrubs_the_words_from_the_users_jobs(
    database: Database, store: AudioStore
) -> None:
    """A job's payload carries its sender's words: clearing the vocabulary removes them
    there too (finished jobs stay 30 days; a queued note must not use them), and only
    from that user's jobs; /forget deletes the jobs altogether."""
    assert vocabulary.JOB_PAYLOAD_FIELD in {f.name for f in fields(TelegramFileJob)}
    assert vocabulary.JOB_PAYLOAD_FIELD in {f.name for f in fields(LinkJob)}
    note = TelegramFileJob(source_kind="voice", file_id="f", file_unique_id="u")
    with database.unit_of_work() as uow:
        for user in (USER, OTHER):
            repository.touch_user(uow.session, user)
            vocabulary.remember(uow.session, user, ["Valbondione"], cap=30)
        ids = {}
        for name, user, payload in (
            ("done", USER, replace(note, hotwords="Valbondione")),
            ("queued", USER, LinkJob("https://youtu.be/x", hotwords="Valbondione")),
            ("plain", USER, note),
            ("other", OTHER, replace(note, hotwords="Valbondione")),
        ):
            kind, data = to_record(payload)
            ids[name] = jobs.enqueue_job(uow.session, kind=kind, payload=data, user_id=user).id
        uow.commit()
    with database.unit_of_work() as uow:
        claimed = jobs.claim_next_job(uow.session)
        assert claimed is not None and claimed.id == ids["done"]
        jobs.mark_job_done(uow.session, claimed.id)
        uow.commit()

    def stored(name: str) -> dict:
        with database.unit_of_work(read_only=True) as uow:
            job = jobs.get_job(uow.session, ids[name])
            return {} if job is None else dict(job.payload)

    service = PersonalVocabulary(database, enabled=True, max_words=30)
    assert service.clear(USER) == 1
    for name in ("done", "queued", "plain"):
        assert stored(name).get(vocabulary.JOB_PAYLOAD_FIELD) is None
    assert stored("done")["file_id"] == "f"  # the rest of the payload stays
    with database.unit_of_work(read_only=True) as uow:
        queued = jobs.get_job(uow.session, ids["queued"])
        assert queued is not None
        assert from_record(queued.kind, queued.payload) == LinkJob("https://youtu.be/x")
    assert stored("other")[vocabulary.JOB_PAYLOAD_FIELD] == "Valbondione"
    with database.unit_of_work() as uow:
        delete_user_data(uow.session, store, OTHER)
        uow.commit()
    assert stored("other") == {}
