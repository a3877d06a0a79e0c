"""`liftboard users …` through typer's runner, on SQLite and PostgreSQL: exit codes, messages, and what
each command changes in the state DB (users, sessions, audit trail)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from typer.testing import CliRunner, Result

from core.config import Settings
from datastore import db, users
from liftboard.cli import app
from tests.builders import valid_tables

WIDE = {"COLUMNS": "250"}
GOOD = "cobalt-lantern-47-orbit"
OTHER_GOOD = "violet-harbour-93-quill"


@pytest.fixture(autouse=True)
def _fast_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2id parameters: the commands hash, the tests need not wait for it."""
    monkeypatch.setattr(users, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1))


@pytest.fixture
def home(settings: Settings) -> Settings:
    """A migrated state DB (SQLite or PostgreSQL, named by the environment) with merchants m00001, m00002
    and one merchant-success user, ana (m00001)."""
    with db.connect(settings) as connection:
        connection.execute(sa.insert(db.sql_table("merchants")), valid_tables()["merchants"].to_dicts())
    users.add_user(settings, "ana", GOOD, "merchant_success", merchant_ids=["m00001"], actor="setup")
    return settings


def _run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, ["users", *args], input=input, env=WIDE)


def _last_audit(settings: Settings) -> dict[str, object]:
    return users.audit_log(settings, limit=1).row(0, named=True)


def test_add_with_password_option(home: Settings) -> None:
    result = _run("add", "bo", "--role", "merchant_success", "--merchant", "m00002", "--password", OTHER_GOOD)

    assert result.exit_code == 0, result.output
    assert "user bo (merchant_success, 1 merchant(s)) created" in result.output
    assert users.sign_in(home, "bo", OTHER_GOOD, None).merchant_ids == frozenset({"m00002"})


def test_add_prompts_for_the_password_twice(home: Settings) -> None:
    result = _run("add", "olga", "--role", "ops", "--actor", "kim", input=f"{GOOD}\n{GOOD}\n")

    assert result.exit_code == 0, result.output
    assert result.output.count("Password") == 1
    assert "Repeat for confirmation" in result.output
    assert GOOD not in result.output  # hidden input
    assert users.sign_in(home, "olga", GOOD, None).is_ops
    assert (_last_audit(home)["actor"], _last_audit(home)["action"]) == ("kim", "add")


def test_add_refuses_a_mismatched_confirmation(home: Settings) -> None:
    result = _run("add", "olga", "--role", "ops", input=f"{GOOD}\n{OTHER_GOOD}\n")

    assert result.exit_code != 0
    assert "do not match" in result.output
    assert users.get_user(home, "olga") is None


def test_add_reads_the_password_from_stdin(home: Settings) -> None:
    result = _run("add", "olga", "--role", "ops", "--password-stdin", input=f"{GOOD}\n")

    assert result.exit_code == 0, result.output
    assert users.sign_in(home, "olga", GOOD, None).username == "olga"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--role", "ops", "--password", "short"], "too short: 5 characters"),
        (["--role", "ops", "--password", "Password12345"], "most common passwords"),
        (["--role", "ops", "--password", "olga-the-great-99"], "must not contain the user name"),
        (
            [
                "--role",
                "merchant_success",
                "--merchant",
                "m00001",
                "--merchant",
                "m99999",
                "--password",
                GOOD,
            ],
            "unknown merchant id(s): m99999",
        ),
    ],
)
def test_add_refusals_exit_1_naming_the_problem(home: Settings, args: list[str], problem: str) -> None:
    result = _run("add", "olga", *args)

    assert result.exit_code == 1
    assert problem in result.output
    assert "Traceback" not in result.output
    assert users.get_user(home, "olga") is None


def test_add_keeps_exit_2_for_an_invalid_request(home: Settings) -> None:
    taken = _run("add", "ana", "--role", "ops", "--password", OTHER_GOOD)
    role = _run("add", "zed", "--role", "boss", "--password", OTHER_GOOD)
    empty = _run("add", "zed", "--role", "ops", "--password-stdin", input="\n")

    assert (taken.exit_code, role.exit_code, empty.exit_code) == (2, 2, 2)
    assert "already exists" in taken.output
    assert "unknown role 'boss'" in role.output
    assert "empty password" in empty.output


def test_list_shows_status_and_last_sign_in(home: Settings) -> None:
    users.add_user(home, "olga", GOOD, "ops")
    users.disable_user(home, "olga", actor="kim")
    users.sign_in(home, "ana", GOOD, "10.0.0.1")

    result = _run("list")

    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("│ ")}
    assert "active" in lines["ana"]
    assert "m00001" in lines["ana"]
    assert " UTC" in lines["ana"]
    assert "disabled" in lines["olga"]
    assert "never" in lines["olga"]
    assert "(all)" in lines["olga"]


def test_disable_and_enable(home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "os-person")
    token = users.create_session(home, "ana")

    disabled = _run("disable", "ana")
    again = _run("disable", "ana")

    assert disabled.exit_code == 0, disabled.output
    assert "user ana disabled" in disabled.output
    assert "already disabled" in again.output
    assert users.resolve_session(home, token) is None
    with pytest.raises(users.SignInRefused):
        users.sign_in(home, "ana", GOOD, None)
    assert (_last_audit(home)["actor"], _last_audit(home)["action"]) == ("os-person", "disable")

    enabled = _run("enable", "ana", "--actor", "kim")

    assert enabled.exit_code == 0, enabled.output
    assert "user ana enabled" in enabled.output
    assert "was not disabled" in _run("enable", "ana").output
    assert users.sign_in(home, "ana", GOOD, None).username == "ana"
    assert (_last_audit(home)["actor"], _last_audit(home)["action"]) == ("kim", "enable")


@pytest.mark.parametrize(
    "args",
    [
        ["disable", "nobody"],
        ["enable", "nobody"],
        ["remove", "nobody", "--yes"],
        ["reset-password", "nobody", "--password", OTHER_GOOD],
        ["set-merchants", "nobody", "--merchant", "m00001"],
    ],
)
def test_unknown_users_exit_1(home: Settings, args: list[str]) -> None:
    result = _run(*args)

    assert result.exit_code == 1
    assert "unknown user 'nobody'" in result.output
    assert "Traceback" not in result.output


def test_reset_password_prompts_twice_and_ends_sessions(home: Settings) -> None:
    token = users.create_session(home, "ana")

    result = _run("reset-password", "ana", "--actor", "kim", input=f"{OTHER_GOOD}\n{OTHER_GOOD}\n")

    assert result.exit_code == 0, result.output
    assert "Repeat for confirmation" in result.output
    assert "password of ana reset" in result.output
    assert users.resolve_session(home, token) is None
    assert users.sign_in(home, "ana", OTHER_GOOD, None).username == "ana"
    assert (_last_audit(home)["actor"], _last_audit(home)["action"]) == ("kim", "reset-password")


def test_reset_password_applies_the_policy(home: Settings) -> None:
    weak = _run("reset-password", "ana", "--password", "anastasia-and-ana")
    short = _run("reset-password", "ana", input="pw\npw\n")

    assert (weak.exit_code, short.exit_code) == (1, 1)
    assert "must not contain the user name" in weak.output
    assert "too short" in short.output
    assert users.sign_in(home, "ana", GOOD, None).username == "ana"  # unchanged


def test_set_merchants(home: Settings) -> None:
    token = users.create_session(home, "ana")

    result = _run("set-merchants", "ana", "--merchant", "m00002", "--merchant", "m00001")

    assert result.exit_code == 0, result.output
    assert "merchants of ana: m00001, m00002" in result.output
    resolved = users.resolve_session(home, token)
    assert resolved is not None
    assert resolved.merchant_ids == frozenset({"m00001", "m00002"})

    cleared = _run("set-merchants", "ana", "--clear")

    assert cleared.exit_code == 0, cleared.output
    assert "merchants of ana: none" in cleared.output
    assert users.get_user(home, "ana").merchant_ids == frozenset()  # type: ignore[union-attr]


def test_set_merchants_refusals(home: Settings) -> None:
    users.add_user(home, "olga", GOOD, "ops")

    unknown = _run("set-merchants", "ana", "--merchant", "m00002", "--merchant", "m77777")
    ops = _run("set-merchants", "olga", "--merchant", "m00002")
    neither = _run("set-merchants", "ana")
    both = _run("set-merchants", "ana", "--merchant", "m00002", "--clear")

    assert unknown.exit_code == 1
    assert "unknown merchant id(s): m77777" in unknown.output
    assert ops.exit_code == 2
    assert "ops users see every merchant" in ops.output
    assert (neither.exit_code, both.exit_code) == (2, 2)
    assert "--clear" in neither.output
    assert users.get_user(home, "ana").merchant_ids == frozenset({"m00001"})  # type: ignore[union-attr]


def test_remove_asks_first_and_keeps_the_audit_trail(home: Settings) -> None:
    token = users.create_session(home, "ana")

    declined = _run("remove", "ana", input="n\n")

    assert declined.exit_code == 1
    assert "Aborted" in declined.output
    assert users.get_user(home, "ana") is not None

    confirmed = _run("remove", "ana", "--actor", "kim", input="y\n")

    assert confirmed.exit_code == 0, confirmed.output
    assert "user ana removed" in confirmed.output
    assert users.get_user(home, "ana") is None
    assert users.resolve_session(home, token) is None
    history = users.audit_log(home).filter(username="ana")
    assert history.select("actor", "action").rows() == [("kim", "remove"), ("setup", "add")]
    assert "ana" not in _run("list").output


def test_seed_demo_needs_a_build(home: Settings) -> None:
    result = _run("seed-demo")

    assert result.exit_code == 1
    assert "no analytics build" in result.output
    assert users.get_user(home, "ops") is None
