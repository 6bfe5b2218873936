"""Per-resident data keys, the crypto-shredding of DESIGN §7.

Personal data inside an event payload is sealed (AES-256-GCM) under its resident's data key. The
data keys live in ``vault.data_keys``, wrapped (AES key wrap, RFC 3394) by the key-encryption key
(KEK) that only the processes hold. Destroying a resident's data key leaves every copy of the log
holding ciphertext nobody can open: that is how the 5-year retention erases a resident.

The vault is not a projection: its keys are not in the log and cannot be rebuilt from it.
"""

from __future__ import annotations

import binascii
import os
import tempfile
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from pydantic import SecretStr

from pipeline.database import Connection
from pipeline.settings import Settings
from schemas.codes import Resident
from schemas.sealed import Sealed

KEY_SIZE = 32  # AES-256, for the KEK and every data key
NONCE_SIZE = 12  # the AES-GCM standard nonce; random per seal, so never reused under one key

ConnectionFactory = Callable[[], AbstractAsyncContextManager[Connection]]


class KeyEncryptionKeyError(ValueError):
    """The configured key-encryption key is missing, malformed or not the vault's."""


class SealedDataError(ValueError):
    """Sealed personal data that cannot be opened with the key and context given."""


@dataclass(frozen=True, slots=True)
class DataKey:
    key_id: uuid.UUID
    key: bytes = field(repr=False)
    # Built once per key: constructing AESGCM costs as much as a decryption, and a replay opens
    # the same residents' data over and over.
    cipher: AESGCM = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.key) != KEY_SIZE:
            raise ValueError(f"a data key is {KEY_SIZE} bytes, got {len(self.key)}")
        object.__setattr__(self, "cipher", AESGCM(self.key))


def seal(key: DataKey, plaintext: dict[str, Any], aad: bytes) -> Sealed:
    """Encrypt a JSON object under the resident's data key. ``aad`` binds the ciphertext to its
    context (say, the municipality and resident code): it is needed again to open it, so a
    sealed value copied into another resident's event does not open there."""
    nonce = os.urandom(NONCE_SIZE)
    ciphertext = key.cipher.encrypt(nonce, orjson.dumps(plaintext), aad)
    return Sealed(
        key_id=key.key_id,
        nonce=binascii.b2a_base64(nonce, newline=False).decode("ascii"),
        ciphertext=binascii.b2a_base64(ciphertext, newline=False).decode("ascii"),
    )


def open_sealed(key: DataKey, sealed: Sealed, aad: bytes) -> dict[str, Any]:
    """The JSON object ``seal`` encrypted; values come back as JSON types (a date as text)."""
    # UUID.__eq__ is Python code; comparing the ints costs a third of it, and this runs for every
    # sealed value a replay reads.
    if sealed.key_id.int != key.key_id.int:
        raise SealedDataError(f"sealed under data key {sealed.key_id}, not {key.key_id}")
    try:
        plaintext = key.cipher.decrypt(
            binascii.a2b_base64(sealed.nonce), binascii.a2b_base64(sealed.ciphertext), aad
        )
    except InvalidTag:
        raise SealedDataError(
            f"sealed data under key {key.key_id} does not authenticate: the ciphertext was "
            "altered or it is opened in another context (associated data) than it was sealed in"
        ) from None
    except ValueError as exc:
        raise SealedDataError(f"sealed data under key {key.key_id} is malformed: {exc}") from None
    try:
        value = orjson.loads(plaintext)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise SealedDataError(f"sealed data under key {key.key_id} is not a JSON object")
    return value


def kek_from_file(path: Path, *, create: bool = True) -> bytes:
    """The KEK in ``path``, 32 raw bytes; a new random one (mode 0600) if the file is absent
    and ``create``, else KeyEncryptionKeyError.

    A file of another size is refused, never replaced: the vault's data keys are wrapped under
    whatever key it held, and a new one would make all of them, and all sealed data, unreadable.
    """
    try:
        kek = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise KeyEncryptionKeyError(
                f"no key-encryption key: BCL_KEK is unset and {path} does not exist"
            ) from None
        kek = _create_kek_file(path)
    if len(kek) != KEY_SIZE:
        raise KeyEncryptionKeyError(
            f"{path} holds {len(kek)} bytes; a key-encryption key file holds exactly {KEY_SIZE} "
            "random bytes. Restore the right file: it is not regenerated, because the vault's "
            "data keys are wrapped under the key it held"
        )
    return kek


def load_kek(settings: Settings, *, create: bool = True) -> bytes:
    """The KEK: ``BCL_KEK`` (base64) if set, else the file ``BCL_KEK_FILE``, else
    ``$BCL_HOME/kek``, created on first use unless ``create`` is false (a restore must find the
    original key, never make a new one)."""
    # getattr: Settings gains `kek` and `kek_file` separately from this module.
    configured = getattr(settings, "kek", None)
    if isinstance(configured, SecretStr):
        configured = configured.get_secret_value()
    if configured:
        try:
            kek = binascii.a2b_base64(str(configured).strip(), strict_mode=True)
        except binascii.Error as exc:
            raise KeyEncryptionKeyError(f"BCL_KEK is not base64 ({exc})") from None
        if len(kek) != KEY_SIZE:
            raise KeyEncryptionKeyError(
                f"BCL_KEK decodes to {len(kek)} bytes; it must be the base64 of {KEY_SIZE} bytes"
            )
        return kek
    return kek_from_file(kek_file(settings), create=create)


def kek_file(settings: Settings) -> Path:
    """Where the KEK is kept when ``BCL_KEK`` is unset: ``BCL_KEK_FILE``, else ``$BCL_HOME/kek``."""
    return Path(getattr(settings, "kek_file", None) or settings.home / "kek")


def _columns(residents: Sequence[Resident]) -> tuple[list[str], list[str]]:
    return [municipality for municipality, _ in residents], [code for _, code in residents]


_SELECT = """
SELECT k.municipality, k.resident_code, k.key_id, k.wrapped_key
FROM unnest($1::text[], $2::text[]) AS r (municipality, resident_code)
JOIN vault.data_keys k USING (municipality, resident_code)
"""

# Conflicts on the resident only: a clash of random key ids must fail loudly, not drop a key.
_INSERT = """
INSERT INTO vault.data_keys (municipality, resident_code, key_id, wrapped_key)
SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::bytea[])
ON CONFLICT (municipality, resident_code) DO NOTHING
RETURNING municipality, resident_code
"""

_DESTROY = """
UPDATE vault.data_keys k SET wrapped_key = NULL, destroyed_at = now()
FROM unnest($1::text[], $2::text[]) AS r (municipality, resident_code)
WHERE k.municipality = r.municipality AND k.resident_code = r.resident_code
  AND k.wrapped_key IS NOT NULL
RETURNING k.municipality, k.resident_code
"""


class Vault:
    """Residents' data keys: looked up in batches, created on demand, destroyed for good.

    Unwrapped keys are kept in an LRU cache of ``cache_size`` residents. A key destroyed through
    this Vault is never served from its cache afterwards. Other processes learn of a destruction
    when their cached entry expires, ``cache_ttl`` seconds after they read it: that is the bound
    on how long a destroyed key stays usable anywhere.
    """

    def __init__(
        self,
        connections: asyncpg.Pool | ConnectionFactory,
        kek: bytes,
        *,
        cache_size: int = 50_000,
        cache_ttl: float = 300.0,
    ) -> None:
        if len(kek) != KEY_SIZE:
            raise KeyEncryptionKeyError(f"a key-encryption key is {KEY_SIZE} bytes, got {len(kek)}")
        self._connect: ConnectionFactory = (
            connections.acquire if isinstance(connections, asyncpg.Pool) else connections
        )
        self._kek = kek
        self._cache_size = cache_size
        self._cache_ttl = cache_ttl
        # Resident → (monotonic expiry, key or None when destroyed, which is final).
        self._cache: OrderedDict[Resident, tuple[float, DataKey | None]] = OrderedDict()
        # Moves at every destroy: a lookup that overlapped one may have read a key the destroy
        # has since removed, so it must not put what it read into the cache.
        self._destroys = 0

    async def data_keys_for(
        self,
        connection: Connection | None,
        residents: Sequence[Resident],
        *,
        create: bool,
    ) -> dict[Resident, DataKey | None]:
        """Each resident's data key; None for a destroyed key, and for a missing one unless
        ``create``. A destroyed key is never replaced: nothing new is sealed for that resident.

        Looks up on ``connection`` (None: one of the vault's own). New keys are committed on a
        connection of the vault's own before they are returned, whatever becomes of the
        caller's transaction, so nothing is ever sealed under a key that was rolled back.
        """
        now = time.monotonic()
        found: dict[Resident, DataKey | None] = {}
        misses: list[Resident] = []
        for resident in dict.fromkeys(residents):
            entry = self._cache.get(resident)
            if entry is not None and entry[0] > now:
                self._cache.move_to_end(resident)
                found[resident] = entry[1]
            else:
                misses.append(resident)
        if not misses:
            return found

        destroys = self._destroys
        async with self._borrowed(connection) as conn:
            rows = await conn.fetch(_SELECT, *_columns(misses))
        fetched = {(row[0], row[1]): self._unwrap(row[2], row[3]) for row in rows}
        absent = [resident for resident in misses if resident not in fetched]
        if create and absent:
            fetched.update(await self._create(absent))
        if destroys == self._destroys:
            self._remember(fetched, now)
        for resident in misses:
            found[resident] = fetched.get(resident)
        return found

    async def destroy(self, connection: Connection | None, residents: Sequence[Resident]) -> int:
        """Destroy the residents' data keys; returns how many were destroyed now (not before).

        Runs on ``connection`` (None: one of the vault's own), inside the caller's transaction if
        it has one. This Vault answers None for these residents from now on; should the caller's
        transaction roll back, it keeps doing so until the entries expire.
        """
        wanted = list(dict.fromkeys(residents))
        async with self._borrowed(connection) as conn:
            rows = await conn.fetch(_DESTROY, *_columns(wanted))
        for resident in wanted:
            self._cache.pop(resident, None)
        self._remember({(row[0], row[1]): None for row in rows}, time.monotonic())
        self._destroys += 1
        return len(rows)

    async def _create(self, residents: list[Resident]) -> dict[Resident, DataKey | None]:
        # Sorted: two creators inserting overlapping residents in different orders could each
        # wait on a row the other has inserted; in one order, one simply waits for the other.
        residents = sorted(residents)
        new = {resident: DataKey(uuid.uuid4(), os.urandom(KEY_SIZE)) for resident in residents}
        async with self._connect() as conn:
            inserted = await conn.fetch(
                _INSERT,
                *_columns(residents),
                [new[resident].key_id for resident in residents],
                [aes_key_wrap(self._kek, new[resident].key) for resident in residents],
            )
            created: dict[Resident, DataKey | None] = {
                (row[0], row[1]): new[(row[0], row[1])] for row in inserted
            }
            # Another creator got there first; its key is the one, and it has committed (ON
            # CONFLICT waited for it), so this autocommit connection sees it.
            lost = [resident for resident in residents if resident not in created]
            if lost:
                rows = await conn.fetch(_SELECT, *_columns(lost))
                created.update({(row[0], row[1]): self._unwrap(row[2], row[3]) for row in rows})
        return created

    def _unwrap(self, key_id: uuid.UUID, wrapped: bytes | None) -> DataKey | None:
        return None if wrapped is None else unwrap_data_key(self._kek, key_id, wrapped)

    def _remember(self, keys: dict[Resident, DataKey | None], now: float) -> None:
        expires = now + self._cache_ttl
        for resident, key in keys.items():
            self._cache[resident] = (expires, key)
            self._cache.move_to_end(resident)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    @asynccontextmanager
    async def _borrowed(self, connection: Connection | None) -> AsyncIterator[Connection]:
        if connection is not None:
            yield connection
        else:
            async with self._connect() as conn:
                yield conn


def unwrap_data_key(kek: bytes, key_id: uuid.UUID, wrapped: bytes) -> DataKey:
    """A data key as the vault keeps it, unwrapped; KeyEncryptionKeyError if ``kek`` is not the
    key it was wrapped under."""
    try:
        return DataKey(key_id, aes_key_unwrap(kek, wrapped))
    except InvalidUnwrap:
        raise KeyEncryptionKeyError(
            f"data key {key_id} does not unwrap under this key-encryption key: the vault was "
            "written with another KEK (check BCL_KEK or the KEK file)"
        ) from None


_MERGE = """
WITH given AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::uuid[], $4::bytea[], $5::timestamptz[],
                         $6::timestamptz[])
        AS g (municipality, resident_code, key_id, wrapped_key, created_at, destroyed_at)
), added AS (
    INSERT INTO vault.data_keys AS k
        (municipality, resident_code, key_id, wrapped_key, created_at, destroyed_at)
    SELECT * FROM given
    ON CONFLICT (municipality, resident_code) DO UPDATE
        SET wrapped_key = NULL, destroyed_at = EXCLUDED.destroyed_at
        WHERE EXCLUDED.destroyed_at IS NOT NULL AND k.destroyed_at IS NULL
          AND k.key_id = EXCLUDED.key_id
    RETURNING k.municipality
)
SELECT g.municipality, g.resident_code FROM given g
JOIN vault.data_keys k USING (municipality, resident_code)
WHERE k.key_id <> g.key_id
"""


async def copy_data_keys(
    source: Connection, target: Connection, residents: Sequence[Resident]
) -> list[Resident]:
    """Carry residents' data keys from one center's vault to the other's, wrapped as they are
    (both centers hold the same KEK): a key the target lacks is added, a key destroyed in the
    source is destroyed in the target too. A destroyed key is never revived.

    Returns the residents whose key differs between the two vaults (each center made its own:
    their data was pushed to both): the target cannot open what the source sealed for them.
    """
    if not residents:
        return []
    rows = await source.fetch(
        "SELECT k.municipality, k.resident_code, k.key_id, k.wrapped_key, k.created_at, "
        "k.destroyed_at FROM unnest($1::text[], $2::text[]) AS r (municipality, resident_code) "
        "JOIN vault.data_keys k USING (municipality, resident_code)",
        *_columns(list(dict.fromkeys(residents))),
    )
    if not rows:
        return []
    conflicts = await target.fetch(_MERGE, *([row[i] for row in rows] for i in range(6)))
    return [(row[0], row[1]) for row in conflicts]


BATCH_VAULT_CACHE = 5_000


def batch_vault(settings: Settings) -> Vault:
    """The vault of a projection: it reads data keys on the batch's own connection only, inside
    the batch's transaction, and never creates or destroys one.

    Its cache is small: a batch reads its residents' keys together, and a resident seldom has
    events in many batches, while each cached key holds a cipher of about 2.5 KiB (50,000 of
    them were 120 MiB of a replay's memory)."""
    return Vault(_no_connections_of_its_own, load_kek(settings), cache_size=BATCH_VAULT_CACHE)


def _no_connections_of_its_own() -> Any:
    raise RuntimeError("a projection reads data keys on its batch's own connection only")


def _create_kek_file(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    kek = os.urandom(KEY_SIZE)
    # Written whole under a temporary name (mkstemp makes it 0600) and linked into place: two
    # first users agree on one key, and nobody ever reads a half-written one.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(kek)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_bytes()
    finally:
        os.unlink(temporary)
    # Losing this file after a crash would lose every data key, so its directory entry is synced.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return kek
