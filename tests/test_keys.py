"""Tests for the station identity: sealing (age scrypt), unlocking, passphrase input, recipients."""

from __future__ import annotations

import io
import pickle
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyrage
import pytest
from pyrage import x25519

from scanstation.errors import ConfigError, StateError, UnlockError
from scanstation.vault.identity import (
    StationKey,
    generate_identity,
    identity_to_age_file,
    is_passphrase_sealed,
    parse_recipient,
    read_passphrase,
    seal_identity,
    unlock_identity,
)

PASSPHRASE = "correct horse battery staple"


@dataclass(frozen=True)
class Sealed:
    path: Path
    secret: str
    recipient: str


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sealed]:
    # scrypt costs about a second per call: seal once for the whole module.
    secret, recipient = generate_identity()
    path = tmp_path_factory.mktemp("keys") / "conf" / "station.key.age"
    seal_identity(secret, PASSPHRASE, path)
    yield Sealed(path, secret, recipient)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_generate_identity_returns_secret_and_matching_recipient() -> None:
    secret, recipient = generate_identity()
    assert secret.startswith("AGE-SECRET-KEY-1")
    assert recipient.startswith("age1")
    assert str(x25519.Identity.from_str(secret).to_public()) == recipient
    assert generate_identity()[0] != secret


def test_station_key_never_shows_or_pickles_the_secret() -> None:
    secret, recipient = generate_identity()
    key = StationKey.from_secret(secret)
    assert key.recipient == recipient
    assert secret not in repr(key) and secret not in str(key) and secret not in f"{key}"
    assert recipient in repr(key)
    with pytest.raises(TypeError):
        pickle.dumps(key)
    assert key.decrypt(pyrage.encrypt(b"page", [key.as_recipient()])) == b"page"
    with pytest.raises(UnlockError) as info:
        StationKey.from_secret("AGE-SECRET-KEY-1NOTVALID")
    assert "NOTVALID" not in str(info.value)


def test_sealed_file_is_an_age_scrypt_file_with_private_mode(sealed: Sealed) -> None:
    data = sealed.path.read_bytes()
    lines = data.split(b"\n")
    assert lines[0] == b"age-encryption.org/v1"
    assert lines[1].startswith(b"-> scrypt ")
    assert is_passphrase_sealed(data)
    assert sealed.secret.encode() not in data
    assert b"AGE-SECRET-KEY" not in data
    assert stat.S_IMODE(sealed.path.stat().st_mode) == 0o600


def test_unlock_with_right_passphrase(sealed: Sealed) -> None:
    key = unlock_identity(sealed.path, PASSPHRASE)
    assert key.recipient == sealed.recipient
    assert key.decrypt(pyrage.encrypt(b"ocr text", [parse_recipient(sealed.recipient)])) == b"ocr text"


def test_unlock_with_wrong_passphrase(sealed: Sealed) -> None:
    with pytest.raises(UnlockError) as info:
        unlock_identity(sealed.path, "wrong horse")
    assert "wrong passphrase" in str(info.value)
    assert "wrong horse" not in str(info.value)
    assert info.value.exit_code == 5


def test_sealing_again_is_refused_without_overwrite(sealed: Sealed) -> None:
    before = sealed.path.read_bytes()
    with pytest.raises(StateError):
        seal_identity(generate_identity()[0], PASSPHRASE, sealed.path)
    assert sealed.path.read_bytes() == before


def test_seal_rejects_bad_input_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        seal_identity("AGE-SECRET-KEY-1GARBAGE", PASSPHRASE, tmp_path / "k.age")
    assert "GARBAGE" not in str(info.value)
    with pytest.raises(ConfigError):
        seal_identity(generate_identity()[0], "", tmp_path / "k.age")
    assert not (tmp_path / "k.age").exists()


def test_unlock_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UnlockError) as info:
        unlock_identity(tmp_path / "nope.age", PASSPHRASE)
    assert "missing" in str(info.value) and "nope.age" in str(info.value)


def test_unlock_refuses_plaintext_identity_file(tmp_path: Path) -> None:
    path = tmp_path / "station.key.age"
    identity_to_age_file(generate_identity()[0], path)
    with pytest.raises(UnlockError) as info:
        unlock_identity(path, PASSPHRASE)
    assert "not a passphrase-sealed" in str(info.value)


def test_identity_file_works_with_age_cli(tmp_path: Path) -> None:
    secret, recipient = generate_identity()
    key_file = tmp_path / "id.txt"
    identity_to_age_file(secret, key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    ciphertext = subprocess.run(["age", "-r", recipient], input=b"from the cli", capture_output=True, check=True)
    assert StationKey.from_secret(secret).decrypt(ciphertext.stdout) == b"from the cli"
    plain = subprocess.run(
        ["age", "-d", "-i", str(key_file)], input=ciphertext.stdout, capture_output=True, check=True
    )
    assert plain.stdout == b"from the cli"


def _passphrase_file(tmp_path: Path, content: bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "pass"
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_read_passphrase_from_file_strips_one_newline(tmp_path: Path) -> None:
    path = _passphrase_file(tmp_path, b"s3cret pass\n\n")
    env = {"SCANSTATION_PASSPHRASE_FILE": str(path)}
    assert read_passphrase(environ=env) == "s3cret pass\n"
    path.write_bytes(b"  spaced  \r\n")
    assert read_passphrase(environ=env) == "  spaced  "
    path.write_bytes(b"no newline")
    assert read_passphrase(environ=env) == "no newline"


def test_read_passphrase_uses_the_named_variable(tmp_path: Path) -> None:
    path = _passphrase_file(tmp_path, "पासवर्ड\n".encode())
    assert read_passphrase("OTHER_VAR", environ={"OTHER_VAR": str(path)}) == "पासवर्ड"


@pytest.mark.parametrize(
    ("content", "mode", "expected"),
    [(b"\n", 0o600, "empty"), (b"pw\n", 0o644, "chmod 600"), (b"\xff\xfe", 0o600, "UTF-8")],
)
def test_read_passphrase_bad_files(tmp_path: Path, content: bytes, mode: int, expected: str) -> None:
    path = _passphrase_file(tmp_path, content, mode)
    with pytest.raises(UnlockError) as info:
        read_passphrase(environ={"SCANSTATION_PASSPHRASE_FILE": str(path)}, require_private=True)
    assert expected in str(info.value)


def test_world_readable_passphrase_file_is_a_warning_by_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _passphrase_file(tmp_path, b"visible secret\n", 0o644)
    assert read_passphrase(environ={"SCANSTATION_PASSPHRASE_FILE": str(path)}) == "visible secret"
    assert "chmod 600" in caplog.text
    assert "visible secret" not in caplog.text


def test_read_passphrase_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UnlockError) as info:
        read_passphrase(environ={"SCANSTATION_PASSPHRASE_FILE": str(tmp_path / "none")})
    assert "SCANSTATION_PASSPHRASE_FILE" in str(info.value) and "does not exist" in str(info.value)


def test_read_passphrase_prompts_on_a_tty() -> None:
    prompts: list[str] = []

    def ask(prompt: str) -> str:
        prompts.append(prompt)
        return "typed"

    assert read_passphrase(prompt="Key: ", environ={}, stdin=_Tty(), ask=ask) == "typed"
    assert prompts == ["Key: "]
    with pytest.raises(UnlockError):
        read_passphrase(environ={}, stdin=_Tty(), ask=lambda _p: "")


def test_read_passphrase_confirm_asks_twice() -> None:
    answers = iter(["new pass", "new pass", "new pass", "typo"])
    assert read_passphrase(environ={}, stdin=_Tty(), ask=lambda _p: next(answers), confirm=True) == "new pass"
    with pytest.raises(UnlockError) as info:
        read_passphrase(environ={}, stdin=_Tty(), ask=lambda _p: next(answers), confirm=True)
    assert "do not match" in str(info.value)


def test_read_passphrase_without_file_or_tty_explains_how() -> None:
    with pytest.raises(UnlockError) as info:
        read_passphrase(environ={}, stdin=io.StringIO(""))
    assert "SCANSTATION_PASSPHRASE_FILE" in str(info.value) and "terminal" in str(info.value)


def test_parse_recipient() -> None:
    _secret, recipient = generate_identity()
    assert str(parse_recipient(f"  {recipient}\n")) == recipient
    with pytest.raises(ConfigError) as info:
        parse_recipient("age1notarecipient", source="station.toml: keys.portal_recipient")
    assert "age1notarecipient" in str(info.value) and "keys.portal_recipient" in str(info.value)


def test_parse_recipient_refuses_a_secret_without_echoing_it() -> None:
    secret, _recipient = generate_identity()
    with pytest.raises(ConfigError) as info:
        parse_recipient(secret)
    assert secret not in str(info.value) and "SECRET" in str(info.value)
