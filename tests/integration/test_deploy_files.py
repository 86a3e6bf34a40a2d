"""The deployment files (Dockerfile, compose.yaml, deploy/): parsed and checked against the
code, so they cannot drift from it (every WHISPER_IT_ variable is a real setting, every
command exists, every file they copy is there), and the entrypoint script run outside a
container: it migrates, runs the role, and passes SIGTERM on."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from bot.cli import build_parser
from bot.commands.worker import NO_TOKEN
from bot.settings import Settings
from storage import migrations
from tests.support.bot_harness import bot_process_env
from tests.support.ops_support import free_port, wait_ready
from tests.support.telegram_emulator import BotApiEmulator

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "compose.yaml"
ENTRYPOINT = REPO / "deploy" / "entrypoint.sh"
UNITS = sorted((REPO / "deploy" / "systemd").glob("*.service"))
DEPLOY_FILES = [DOCKERFILE, COMPOSE, ENTRYPOINT, *UNITS]
SETTING_RE = re.compile(r"\bWHISPER_IT_([A-Z0-9_]+)")
ROLES = ("bot", "worker")
APP_SERVICES = ("front", "worker")


def parses(argv: list[str]) -> bool:
    """Whether ``whisper-it ARGV`` is a command the CLI knows."""
    try:
        build_parser().parse_args(argv)
    except SystemExit:
        return False
    return True


def test_every_whisper_it_variable_is_a_setting() -> None:
    assert UNITS, "no systemd units"
    known = set(Settings.model_fields)
    for path in DEPLOY_FILES:
        used = set(SETTING_RE.findall(path.read_text()))
        assert used, path
        unknown = {name for name in used if name.lower() not in known}
        assert not unknown, f"{path.name}: not settings: {sorted(unknown)}"


def test_compose_has_a_front_workers_postgres_and_a_local_bot_api_profile() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) == {"front", "worker", "postgres", "telegram-bot-api"}
    assert services["front"]["environment"]["WHISPER_IT_WORKERS"] == "0"
    assert int(services["worker"]["environment"]["WHISPER_IT_WORKERS"]) >= 1
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert services["telegram-bot-api"]["profiles"] == ["local-bot-api"]
    for name in APP_SERVICES:
        service = services[name]
        assert service["command"][0] in ROLES and parses(service["command"])
        assert service["build"] == "." and "data:/data" in service["volumes"]
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["logging"]["options"]["max-size"]  # months of logs stay bounded
        port = service["environment"]["WHISPER_IT_HTTP_PORT"]
        probe = " ".join(service["healthcheck"]["test"])
        assert f":{port}/readyz" in probe
        url = service["environment"]["WHISPER_IT_DATABASE_URL"]
        assert url.startswith("postgresql+psycopg://") and "@postgres:5432/" in url
        # Any POSTGRES_PASSWORD works: libpq reads it from PGPASSWORD, not from the URL.
        assert make_url(url).password is None
        assert service["environment"]["PGPASSWORD"] == "${POSTGRES_PASSWORD:-whisper}"
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert set(compose["volumes"]) >= {"data", "postgres"}


def test_the_local_bot_api_profile_shares_its_files_in_local_mode() -> None:
    # The server hands a local-mode bot a file's *path* and serves no downloads over HTTP:
    # without --local, the shared folder and the bot's local mode, no file could be read.
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    server = services["telegram-bot-api"]
    assert server["environment"]["TELEGRAM_LOCAL"] == "1"
    (folder,) = [v.split(":")[1] for v in server["volumes"] if v.startswith("bot-api:")]
    for name in APP_SERVICES:
        service = services[name]
        assert f"bot-api:{folder}:ro" in service["volumes"]
        assert "WHISPER_IT_TELEGRAM_LOCAL_MODE" in service["environment"]


def _dockerfile() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_is_non_root_with_a_data_volume_and_the_entrypoint() -> None:
    instructions = _dockerfile()
    values = {}
    for keyword, argument in instructions:
        values.setdefault(keyword, []).append(argument)
    assert values["USER"] == ["whisper"]
    assert values["VOLUME"] == ['["/data"]']
    assert "WHISPER_IT_DATA_DIR=/data" in " ".join(values["ENV"])
    # Every COPY source exists; the entrypoint script is the one tested below.
    for argument in values["COPY"]:
        *sources, _destination = [p for p in shlex.split(argument) if not p.startswith("--")]
        for source in sources:
            assert (REPO / source).exists(), source
    assert any("deploy/entrypoint.sh" in argument for argument in values["COPY"])
    assert values["ENTRYPOINT"] == ['["whisper-it-entrypoint"]']
    assert values["CMD"] == ['["bot"]'] and parses(["bot"])
    assert "/healthz" in values["HEALTHCHECK"][0]
    # CPU torch by default; a build argument switches the index (CUDA).
    args = dict(argument.split("=", 1) for argument in values["ARG"] if "=" in argument)
    assert args["TORCH_INDEX_URL"].endswith("/whl/cpu")
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert args["EXTRAS"] in extras
    copied = " ".join(values["COPY"])
    for package in ("bot", "model", "storage", "training", "alembic"):
        assert f"COPY {package} " in f"COPY {copied} " or f" {package} ./{package}" in copied


def _unit(path: Path) -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            entries.setdefault(key, []).append(value)
    return entries


def _command(line: str) -> tuple[dict[str, str], str, list[str]]:
    """An Exec line's variables set through ``/usr/bin/env``, its program and arguments."""
    words = shlex.split(line)
    variables: dict[str, str] = {}
    if words[0] == "/usr/bin/env":
        words = words[1:]
        while "=" in words[0]:
            name, value = words.pop(0).split("=", 1)
            variables[name] = value
    return variables, words[0], words[1:]


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_units_run_existing_commands(unit: Path) -> None:
    entries = _unit(unit)
    for key in ("ExecStartPre", "ExecStart"):
        for command in entries.get(key, []):
            _, program, argv = _command(command)
            assert program.endswith("/whisper-it"), command
            assert parses(argv), command
    assert entries["User"] == ["whisper-it"]  # never root
    # Nothing else creates that user: the header says how (else systemd fails, 217/USER).
    assert "useradd --system" in unit.read_text()
    environment = dict(value.split("=", 1) for value in entries["Environment"])
    assert "WHISPER_IT_DATA_DIR" in environment and "WHISPER_IT_WORKERS" in environment
    assert entries["ReadWritePaths"] == [environment["WHISPER_IT_DATA_DIR"]]


def test_worker_instances_keep_their_own_id_and_port() -> None:
    # systemd lets EnvironmentFile= override Environment= whatever their order: the values
    # that differ per instance go on the command line, where the env file cannot reach.
    (unit,) = (path for path in UNITS if path.name == "whisper-it-worker@.service")
    entries = _unit(unit)
    (start,) = entries["ExecStart"]
    variables, _, argv = _command(start)
    assert argv == ["worker"]
    assert variables["WHISPER_IT_WORKER_ID"].endswith("%i")
    assert variables["WHISPER_IT_HTTP_PORT"] == "910%i"
    environment = dict(value.split("=", 1) for value in entries["Environment"])
    assert not set(variables) & set(environment)


# --- the entrypoint, outside a container -------------------------------------------------


def _entrypoint_env(base: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """``whisper-it`` on PATH runs this checkout (as the installed script would)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "whisper-it"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m bot "$@"\n')
    shim.chmod(0o755)
    return base | {"PATH": f"{bin_dir}{os.pathsep}{base.get('PATH', '')}"}


def test_entrypoint_migrates_before_the_role_and_reports_its_errors(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHISPER_IT_")}
    env |= {"WHISPER_IT_DATA_DIR": str(data), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), "worker"],
        env=_entrypoint_env(env, tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().endswith(NO_TOKEN), result.stderr
    url = Settings(_env_file=None, data_dir=data).resolved_database_url
    assert migrations.current(url) == migrations.head()  # migrated before the role ran


def test_entrypoint_runs_a_front_that_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "front.log"
    with BotApiEmulator() as emu:
        env = bot_process_env(emu, tmp_path / "data", tmp_path / "cache", WORKERS="0")
        env["WHISPER_IT_HTTP_PORT"] = str(port)
        with log.open("wb") as out:
            front = subprocess.Popen(
                ["sh", str(ENTRYPOINT), "bot"],
                env=_entrypoint_env(env, tmp_path),
                cwd=tmp_path,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            assert wait_ready(port, front, log)["status"] == "ok"
            front.send_signal(signal.SIGTERM)  # exec: the signal reaches whisper-it itself
            assert front.wait(timeout=60) == 0, log.read_text()[-2000:]
        finally:
            if front.poll() is None:
                front.kill()
                front.wait()
