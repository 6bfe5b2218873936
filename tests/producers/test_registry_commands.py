"""`bcl municipality add/show/list/update` and its seal keys through the real command line and
services."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from typer.testing import CliRunner

from consumers.issuer.rules import signing_key
from pipeline.cli import app
from pipeline.seals import (
    generate_seal_key,
    load_seal_key,
    load_seal_public_key,
    seal,
    seal_holds,
    seal_key_id,
    write_seal_key,
)
from pipeline.settings import Settings
from pipeline.signing import generate_signing_key, public_key_pem, write_key_pair
from producers.registry import registered_profile
from tests.helpers import settings_env
from tests.producers.push_helpers import CHIYODA, SAMPLE_CSV


def bcl(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env={**settings_env(settings), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_municipality_joins_changes_and_is_listed(platform: Settings) -> None:
    added = bcl(
        platform, "municipality", "add", "141305", "--name", "川崎市", "--class",
        "designated_city", "--population", "1540000", "--joined", "2023-04-01",
        "--fee", "juminhyo=300@2023-04-01",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr + added.stdout
    assert (platform.home / "keys" / "141305.key.pem").exists()

    again = bcl(platform, "municipality", "add", "141305", "--name", "川崎市")
    assert again.returncode == 2
    assert "already registered" in again.stderr
    assert "Traceback" not in again.stderr

    updated = bcl(
        platform, "municipality", "update", "141305",
        "--fee", "juminhyo=300@2023-04-01", "--fee", "juminhyo=200@2024-04-01",
        "--window", "06:30-22:00",
    )  # fmt: skip
    assert updated.returncode == 0, updated.stderr
    shown = bcl(platform, "municipality", "show", "141305", "--json")
    assert shown.returncode == 0, shown.stderr
    assert '"fee_yen": 200' in shown.stdout
    assert '"closes": "22:00:00"' in shown.stdout
    listed = bcl(platform, "municipality", "list")
    assert "川崎市" in listed.stdout
    assert "designated_city" in listed.stdout


def test_invalid_profiles_are_refused_with_what_to_fix(platform: Settings) -> None:
    outside = bcl(platform, "municipality", "add", "131016", "--name", "千代田区",
                  "--window", "05:00-23:00")  # fmt: skip
    assert outside.returncode == 2
    assert "must lie inside 06:30–23:00" in outside.stderr
    koseki = bcl(platform, "municipality", "add", "131016", "--name", "千代田区",
                 "--offers", "juminhyo,koseki")  # fmt: skip
    assert koseki.returncode == 2
    assert "BCL issues only" in koseki.stderr
    unknown = bcl(platform, "municipality", "update", "131032", "--population", "1")
    assert unknown.returncode == 2
    assert "not registered" in unknown.stderr
    for result in (outside, koseki, unknown):
        assert "Traceback" not in result.stderr


def add_chiyoda(settings: Settings) -> subprocess.CompletedProcess[str]:
    return bcl(settings, "municipality", "add", CHIYODA, "--name", "千代田区")


def test_registering_again_reuses_the_push_key_pair_kept_under_bcl_home(
    platform: Settings,
) -> None:
    # Registered before on a log since lost: its key pair stayed in $BCL_HOME/keys.
    private, public = write_key_pair(platform.home / "keys", CHIYODA)
    kept = private.read_bytes(), public.read_bytes()

    added = add_chiyoda(platform)
    assert added.returncode == 0, added.stderr
    assert f"push-signing key: reused the existing key {private}" in " ".join(added.stdout.split())
    assert (private.read_bytes(), public.read_bytes()) == kept
    shown = orjson.loads(bcl(platform, "municipality", "show", CHIYODA, "--json").stdout)
    assert shown["push_public_key"] == public.read_text()
    # Signed with the kept private key, checked against the registered public key.
    pushed = bcl(platform, "push", CHIYODA, str(SAMPLE_CSV))
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert "accepted" in pushed.stdout


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("other_public", "131016.key.pem and"),
        ("no_private", "131016.pub.pem has no private key 131016.key.pem beside it"),
        ("garbage_private", "131016.key.pem: not a PEM private key"),
    ],
)
def test_a_kept_push_key_pair_that_cannot_serve_is_refused_with_what_to_do(
    platform: Settings, damage: str, message: str
) -> None:
    private, public = write_key_pair(platform.home / "keys", CHIYODA)
    match damage:
        case "other_public":
            public.write_text(public_key_pem(generate_signing_key()))
        case "no_private":
            private.unlink()
        case "garbage_private":
            private.write_bytes(b"not a key")
    left = sorted((path.name, path.read_bytes()) for path in private.parent.iterdir())

    refused = add_chiyoda(platform)
    assert refused.returncode == 2, refused.stdout
    said = " ".join(refused.stderr.split())
    assert message in said
    assert "move both files away to make a new pair" in said
    assert "Traceback" not in refused.stderr
    assert sorted((path.name, path.read_bytes()) for path in private.parent.iterdir()) == left
    unknown = bcl(platform, "municipality", "show", CHIYODA)
    assert "not registered" in unknown.stderr


def traditional_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """``-----BEGIN EC PRIVATE KEY-----``, as `openssl ecparam -genkey` writes it."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


async def test_an_imported_seal_key_seals_and_the_registry_verifies_it(
    platform: Settings, tmp_path: Path
) -> None:
    assert add_chiyoda(platform).returncode == 0
    key = generate_seal_key()
    key_id = seal_key_id(key)
    key_file = tmp_path / "chiyoda-seal.pem"
    key_file.write_bytes(traditional_pem(key))

    imported = bcl(platform, "municipality", "seal-key", "import", CHIYODA, "--key", str(key_file))
    assert imported.returncode == 0, imported.stderr
    said = " ".join(imported.stdout.split())
    assert f"seal key {key_id} of {CHIYODA} added at" in said
    assert "private key stored at" in said

    # What the issuer would seal with: the imported key, as BCL stored it...
    profile = await registered_profile(platform, CHIYODA)
    assert profile is not None
    assert [entry.key_id for entry in profile.seal_keys] == [key_id]
    chosen = signing_key(profile, datetime.now(UTC), {key_id})
    assert chosen is not None
    assert chosen.key_id == key_id
    content = b'{"certificate":"juminhyo"}'
    signature = seal(load_seal_key(platform, CHIYODA, key_id), content)
    # ...verifies with the public key verifiers get from the registry, and was made by our key.
    exported = tmp_path / "seal.pub.pem"
    export = ("municipality", "seal-key", "export", CHIYODA, "-o", str(exported))
    assert bcl(platform, *export).returncode == 0
    registered = load_seal_public_key(exported.read_text())
    assert seal_holds(registered, content, signature)
    assert seal_holds(registered, content, seal(key, content))
    assert not seal_holds(registered, content, seal(generate_seal_key(), content))

    # Restored: the registry lists the key, $BCL_HOME lost it. No second entry, the key is kept.
    shutil.rmtree(platform.home / "seals")
    again = bcl(platform, "municipality", "seal-key", "import", CHIYODA, "--key", str(key_file))
    assert again.returncode == 0, again.stderr
    said = " ".join(again.stdout.split())
    assert f"seal key {key_id} of {CHIYODA} already registered" in said
    assert "private key stored at" in said
    assert load_seal_key(platform, CHIYODA, key_id).private_numbers() == key.private_numbers()
    held = bcl(platform, "municipality", "seal-key", "import", CHIYODA, "--key", str(key_file))
    assert "private key already kept at" in " ".join(held.stdout.split())
    profile = await registered_profile(platform, CHIYODA, refresh_first=True)
    assert profile is not None
    assert len(profile.seal_keys) == 1

    # A revoked key must never seal again.
    assert bcl(platform, "municipality", "seal-key", "revoke", CHIYODA, key_id).returncode == 0
    revoked = bcl(platform, "municipality", "seal-key", "import", CHIYODA, "--key", str(key_file))
    assert revoked.returncode == 2
    said = " ".join(revoked.stderr.split())
    assert f"seal key {key_id} of {CHIYODA} was revoked at" in said
    assert "must never seal again" in said
    assert "Traceback" not in revoked.stderr


async def test_an_encrypted_seal_key_is_imported_with_its_password_file(
    platform: Settings, tmp_path: Path
) -> None:
    assert add_chiyoda(platform).returncode == 0
    key = generate_seal_key()
    key_file, password, wrong = tmp_path / "seal.pem", tmp_path / "pass", tmp_path / "wrong"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"kanda 1-1"),
        )
    )
    password.write_text("kanda 1-1\n")
    wrong.write_text("kanda 1-2\n")
    command = ("municipality", "seal-key", "import", CHIYODA, "--key", str(key_file))

    without = bcl(platform, *command)
    assert without.returncode == 2
    assert "an encrypted private key; give its password with --password-file" in without.stderr
    mistyped = bcl(platform, *command, "--password-file", str(wrong))
    assert mistyped.returncode == 2
    assert "cannot be decrypted with the password given" in mistyped.stderr
    imported = bcl(platform, *command, "--password-file", str(password))
    assert imported.returncode == 0, imported.stderr
    assert load_seal_key(platform, CHIYODA, seal_key_id(key)).private_numbers() == (
        key.private_numbers()
    )
    stored = (platform.home / "seals" / CHIYODA / f"{seal_key_id(key)}.key.pem").read_bytes()
    assert b"ENCRYPTED" not in stored  # kept like created keys: the file mode protects it


async def test_create_keeps_the_seal_keys_bcl_already_holds(platform: Settings) -> None:
    # A key BCL held for an earlier registration (on a log since lost).
    earlier = generate_seal_key()
    earlier_path = write_seal_key(platform, CHIYODA, earlier)
    earlier_pem = earlier_path.read_bytes()
    assert add_chiyoda(platform).returncode == 0

    created = bcl(platform, "municipality", "seal-key", "create", CHIYODA)
    assert created.returncode == 0, created.stderr
    assert earlier_path.read_bytes() == earlier_pem
    assert len(list(earlier_path.parent.glob("*.key.pem"))) == 2
    # Imported from where BCL keeps it: listed again, the file left as it is.
    imported = bcl(
        platform, "municipality", "seal-key", "import", CHIYODA, "--key", str(earlier_path)
    )
    assert imported.returncode == 0, imported.stderr
    said = " ".join(imported.stdout.split())
    assert f"seal key {seal_key_id(earlier)} of {CHIYODA} added at" in said
    assert f"private key already kept at {earlier_path}" in said
    assert earlier_path.read_bytes() == earlier_pem
    profile = await registered_profile(platform, CHIYODA)
    assert profile is not None
    assert len(profile.seal_keys) == 2


def _pem_of(kind: str, tmp_path: Path) -> Path:
    private = serialization.PrivateFormat.PKCS8
    bare = serialization.NoEncryption()
    pem: bytes
    match kind:
        case "rsa":
            rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = rsa_key.private_bytes(serialization.Encoding.PEM, private, bare)
        case "p384":
            p384 = ec.generate_private_key(ec.SECP384R1())
            pem = p384.private_bytes(serialization.Encoding.PEM, private, bare)
        case "ed25519":
            pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, private, bare
            )
        case "public":
            pem = (
                generate_seal_key()
                .public_key()
                .public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
        case "garbage":
            pem = b"\x00 not a key"
        case "truncated":
            pem = traditional_pem(generate_seal_key())[:120] + b"\n-----END EC PRIVATE KEY-----\n"
        case _:  # "missing"
            return tmp_path / "missing.pem"
    path = tmp_path / f"{kind}.pem"
    path.write_bytes(pem)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("rsa", "rsa.pem: an RSA key; seals are ECDSA P-256 (prime256v1) keys"),
        ("p384", "p384.pem: an EC (secp384r1) key; seals are ECDSA P-256 (prime256v1) keys"),
        ("ed25519", "ed25519.pem: an Ed25519 key; seals are ECDSA P-256 (prime256v1) keys"),
        ("public", "public.pem: a public key, not a private key"),
        ("garbage", "garbage.pem: not a PEM private key"),
        ("truncated", "truncated.pem: not a PEM private key that can be read"),
        ("missing", "cannot read"),
    ],
)
def test_what_is_not_a_p256_private_key_is_refused_in_one_line(
    kind: str, message: str, tmp_path: Path
) -> None:
    key_file = _pem_of(kind, tmp_path)
    result = CliRunner().invoke(
        app,
        ["municipality", "seal-key", "import", CHIYODA, "--key", str(key_file)],
        env={"BCL_HOME": str(tmp_path / "bcl"), "COLUMNS": "300"},
    )
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "bcl" / "seals").exists()


def test_seal_key_import_has_help() -> None:
    result = CliRunner().invoke(app, ["municipality", "seal-key", "import", "--help"])
    assert result.exit_code == 0, result.output
    assert "--password-file" in result.output
