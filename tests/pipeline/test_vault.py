from __future__ import annotations

import asyncio
import base64
import os
import stat
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.database import Connection
from pipeline.migrations import migrate
from pipeline.settings import Settings
from pipeline.vault import (
    DataKey,
    KeyEncryptionKeyError,
    SealedDataError,
    Vault,
    kek_from_file,
    load_kek,
    open_sealed,
    seal,
)
from schemas.sealed import Sealed

AAD = b"131016/A12345678901"
RESIDENTS = [("131016", f"R{n:010}") for n in range(50)]


def data_key() -> DataKey:
    return DataKey(uuid.uuid4(), os.urandom(32))


class WithKek(Settings):
    """Settings with the KEK fields it is to gain, so `load_kek` is tested before they land."""

    kek: str | None = None
    kek_file: Path | None = None


# --- sealing -------------------------------------------------------------------------------


def test_sealed_data_opens_with_its_key_and_context() -> None:
    key = data_key()
    person = {"name": "山田 太郎", "born": "1980-04-01", "address": "千代田区1-1"}
    sealed = seal(key, person, AAD)
    assert sealed.key_id == key.key_id
    assert len(base64.b64decode(sealed.nonce)) == 12
    assert "山田".encode() not in base64.b64decode(sealed.ciphertext)
    assert open_sealed(key, sealed, AAD) == person

    # What travels in an event payload validates and opens the same.
    on_the_wire = Sealed.model_validate_json(sealed.model_dump_json())
    assert on_the_wire == sealed
    assert open_sealed(key, on_the_wire, AAD) == person
    assert seal(key, person, AAD).nonce != sealed.nonce


def test_a_data_key_is_not_shown_in_logs() -> None:
    key = data_key()
    assert key.key.hex() not in repr(key)
    assert str(key.key_id) in repr(key)


def test_tampered_sealed_data_does_not_open() -> None:
    key = data_key()
    sealed = seal(key, {"name": "山田 太郎"}, AAD)
    raw = bytearray(base64.b64decode(sealed.ciphertext))
    raw[0] ^= 1
    tampered = sealed.model_copy(update={"ciphertext": base64.b64encode(raw).decode()})
    with pytest.raises(SealedDataError, match="does not authenticate"):
        open_sealed(key, tampered, AAD)
    other_nonce = sealed.model_copy(update={"nonce": base64.b64encode(os.urandom(12)).decode()})
    with pytest.raises(SealedDataError, match="does not authenticate"):
        open_sealed(key, other_nonce, AAD)


def test_sealed_data_does_not_open_in_another_context() -> None:
    key = data_key()
    sealed = seal(key, {"name": "山田 太郎"}, AAD)
    with pytest.raises(SealedDataError, match="another context"):
        open_sealed(key, sealed, b"131016/B00000000000")


def test_sealed_data_does_not_open_with_another_key() -> None:
    key = data_key()
    sealed = seal(key, {"name": "山田 太郎"}, AAD)
    with pytest.raises(SealedDataError, match=f"sealed under data key {key.key_id}, not"):
        open_sealed(data_key(), sealed, AAD)
    impostor = DataKey(key.key_id, os.urandom(32))
    with pytest.raises(SealedDataError, match="does not authenticate"):
        open_sealed(impostor, sealed, AAD)


@pytest.mark.parametrize("plaintext", [b"[1, 2]", b'"text"', b"not json"])
def test_sealed_data_that_is_not_a_json_object_is_refused(plaintext: bytes) -> None:
    key = data_key()
    nonce = os.urandom(12)
    sealed = Sealed(
        key_id=key.key_id,
        nonce=base64.b64encode(nonce).decode(),
        ciphertext=base64.b64encode(key.cipher.encrypt(nonce, plaintext, AAD)).decode(),
    )
    with pytest.raises(SealedDataError, match="not a JSON object"):
        open_sealed(key, sealed, AAD)


json_values = st.recursive(
    st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.text(alphabet=st.characters(exclude_categories=["Cs"])),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet=st.characters(exclude_categories=["Cs"])), inner)
    ),
    max_leaves=12,
)


@given(
    plaintext=st.dictionaries(
        st.text(alphabet=st.characters(exclude_categories=["Cs"])), json_values
    ),
    aad=st.binary(max_size=64),
)
def test_any_json_object_round_trips(plaintext: dict[str, Any], aad: bytes) -> None:
    key = data_key()
    sealed = Sealed.model_validate_json(seal(key, plaintext, aad).model_dump_json())
    assert open_sealed(key, sealed, aad) == plaintext


# --- the key-encryption key ------------------------------------------------------------------


def test_the_kek_file_is_created_private_and_then_reused(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "kek"
    kek = kek_from_file(path)
    assert len(kek) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert kek_from_file(path) == kek
    assert list(path.parent.iterdir()) == [path]


def test_a_kek_file_of_the_wrong_size_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    path.write_bytes(base64.b64encode(os.urandom(32)))
    with pytest.raises(KeyEncryptionKeyError, match=r"holds 44 bytes; .* exactly 32"):
        kek_from_file(path)
    assert len(path.read_bytes()) == 44


def test_the_kek_comes_from_the_setting_then_the_file_then_home(tmp_path: Path) -> None:
    kek = os.urandom(32)
    assert load_kek(WithKek(home=tmp_path, kek=base64.b64encode(kek).decode())) == kek

    file = tmp_path / "elsewhere" / "kek"
    from_file = load_kek(WithKek(home=tmp_path, kek_file=file))
    assert file.read_bytes() == from_file

    from_home = load_kek(Settings(home=tmp_path))
    assert (tmp_path / "kek").read_bytes() == from_home != from_file

    with pytest.raises(KeyEncryptionKeyError, match="BCL_KEK decodes to 16 bytes"):
        load_kek(WithKek(home=tmp_path, kek=base64.b64encode(os.urandom(16)).decode()))
    with pytest.raises(KeyEncryptionKeyError, match="BCL_KEK is not base64"):
        load_kek(WithKek(home=tmp_path, kek="not base64!"))


# --- the vault in Postgres -------------------------------------------------------------------


@pytest.fixture
async def pool(db: asyncpg.Connection, db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    assert await migrate(db, "vault") == ["vault/001_data_keys.sql"]
    async with asyncpg.create_pool(db_dsn, min_size=1, max_size=3) as pool:
        yield pool


async def test_keys_are_created_once_and_found_again(
    db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    kek = os.urandom(32)
    vault = Vault(pool, kek)
    assert await vault.data_keys_for(db, RESIDENTS, create=False) == dict.fromkeys(RESIDENTS)

    created = await vault.data_keys_for(db, RESIDENTS + RESIDENTS[:5], create=True)
    assert set(created) == set(RESIDENTS)
    keys = [created[resident] for resident in RESIDENTS]
    assert all(key is not None for key in keys)
    assert len({key.key_id for key in keys if key is not None}) == len(RESIDENTS)
    assert await db.fetchval("SELECT count(*) FROM vault.data_keys") == len(RESIDENTS)

    # Another process, with an empty cache, unwraps the same keys.
    assert await Vault(pool, kek).data_keys_for(None, RESIDENTS, create=True) == created
    assert await vault.data_keys_for(None, RESIDENTS, create=False) == created

    stored = await db.fetch("SELECT key_id, wrapped_key FROM vault.data_keys")
    plain = {key.key_id: key.key for key in keys if key is not None}
    assert all(row["wrapped_key"] != plain[row["key_id"]] for row in stored)
    assert all(len(row["wrapped_key"]) == 40 for row in stored)


async def test_new_keys_outlive_a_rolled_back_caller(
    db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    kek = os.urandom(32)
    vault = Vault(pool, kek)
    transaction = db.transaction()
    await transaction.start()
    created = await vault.data_keys_for(db, RESIDENTS[:3], create=True)
    await transaction.rollback()
    assert await Vault(pool, kek).data_keys_for(db, RESIDENTS[:3], create=False) == created


async def test_a_destroyed_key_is_gone_for_good(db: asyncpg.Connection, pool: asyncpg.Pool) -> None:
    kek = os.urandom(32)
    vault = Vault(pool, kek)
    keys = await vault.data_keys_for(db, RESIDENTS, create=True)
    gone, kept = RESIDENTS[:10], RESIDENTS[10:]

    assert await vault.destroy(db, [*gone, ("999999", "never-had-a-key")]) == 10
    assert await vault.destroy(db, gone) == 0

    for reader in (vault, Vault(pool, kek)):
        after = await reader.data_keys_for(db, RESIDENTS, create=True)
        assert after == {**dict.fromkeys(gone), **{r: keys[r] for r in kept}}
    rows = await db.fetch(
        "SELECT wrapped_key, destroyed_at FROM vault.data_keys WHERE resident_code = $1",
        gone[0][1],
    )
    assert rows[0]["wrapped_key"] is None
    assert rows[0]["destroyed_at"] is not None


async def test_concurrent_creators_agree_on_one_key(db_dsn: str, pool: asyncpg.Pool) -> None:
    kek = os.urandom(32)
    residents = [("131016", f"R{n:010}") for n in range(2000)]
    async with asyncpg.create_pool(db_dsn, min_size=1, max_size=2) as other_pool:
        one, other = Vault(pool, kek), Vault(other_pool, kek)
        a, b = await asyncpg.connect(db_dsn), await asyncpg.connect(db_dsn)
        try:
            found_one, found_other = await asyncio.gather(
                one.data_keys_for(a, residents, create=True),
                other.data_keys_for(b, residents[::-1], create=True),
            )
            count = await a.fetchval("SELECT count(*) FROM vault.data_keys")
        finally:
            await a.close()
            await b.close()
    assert found_one == found_other
    assert None not in found_one.values()
    assert count == len(residents)


async def test_other_processes_forget_a_destroyed_key_when_their_cache_expires(
    db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    kek = os.urandom(32)
    eraser = Vault(pool, kek)
    reader = Vault(pool, kek, cache_ttl=0.5)
    resident = RESIDENTS[0]
    key = (await reader.data_keys_for(db, [resident], create=True))[resident]
    await eraser.destroy(db, [resident])
    assert (await reader.data_keys_for(db, [resident], create=False))[resident] == key
    await asyncio.sleep(0.6)
    assert (await reader.data_keys_for(db, [resident], create=False))[resident] is None


async def test_the_least_recently_used_keys_leave_the_cache(
    db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    kek = os.urandom(32)
    eraser = Vault(pool, kek)
    reader = Vault(pool, kek, cache_size=1)
    first, second = RESIDENTS[:2]
    keys = await reader.data_keys_for(db, [first, second], create=True)
    await eraser.destroy(db, [first, second])
    # `first` was evicted by `second`, so the reader asks Postgres again; `second` it still holds.
    assert await reader.data_keys_for(db, [second], create=False) == {second: keys[second]}
    assert await reader.data_keys_for(db, [first], create=False) == {first: None}


async def test_a_lookup_overlapping_a_destroy_does_not_bring_the_key_back(
    db_dsn: str, db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    kek = os.urandom(32)
    resident = RESIDENTS[0]
    await Vault(pool, kek).data_keys_for(db, [resident], create=True)

    go = asyncio.Event()

    @asynccontextmanager
    async def held_back() -> AsyncIterator[Connection]:
        await go.wait()
        async with pool.acquire() as connection:
            yield connection

    vault = Vault(held_back, kek)
    lookup = asyncio.create_task(vault.data_keys_for(None, [resident], create=False))
    await asyncio.sleep(0.05)
    async with db.transaction():
        assert await vault.destroy(db, [resident]) == 1
        go.set()
        # It reads the key as committed before the destroy commits; that answer is right...
        assert (await lookup)[resident] is not None
    # ...but it must not outlive the destroy in the cache.
    assert await vault.data_keys_for(None, [resident], create=False) == {resident: None}


async def test_keys_wrapped_under_another_kek_are_reported(
    db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    await Vault(pool, os.urandom(32)).data_keys_for(db, RESIDENTS[:1], create=True)
    with pytest.raises(KeyEncryptionKeyError, match="written with another KEK"):
        await Vault(pool, os.urandom(32)).data_keys_for(db, RESIDENTS[:1], create=False)
    with pytest.raises(KeyEncryptionKeyError, match="32 bytes, got 16"):
        Vault(pool, os.urandom(16))


def test_sealed_payloads_are_json_with_base64_fields() -> None:
    key = data_key()
    wire = orjson.loads(seal(key, {"n": 1}, AAD).model_dump_json())
    assert set(wire) == {"key_id", "nonce", "ciphertext"}
    assert uuid.UUID(wire["key_id"]) == key.key_id
