"""`bcl backup` and `bcl restore`: the state the log cannot give back (DESIGN §8).

Every projection is rebuilt from the log by `bcl replay --all`. What the log does not hold is
declared once, below: a few Postgres tables outside the projections' schemas
(``BACKED_UP_TABLES``) and the key material under ``$BCL_HOME`` (``BACKED_UP_FOLDERS``). The
other tables of those schemas are listed with the reason they need no backup
(``NOT_BACKED_UP``); a test holds the lists to what the migrations create.

A backup is a folder, private to its owner (0700 folders; files keep their modes, 0600 for
private keys)::

    manifest.json                  format, time, center, version; each file's path, size, sha256
    tables/<schema>.<table>.csv    COPY ... TO STDOUT as CSV with a header (bytea as hex, times
                                   in UTC), every table from one REPEATABLE READ snapshot
    files/<folder>/...             the key files, byte for byte

The key-encryption key is never in it: the data keys are in it wrapped by the KEK, and a backup
holding both would hold them in the clear. The operator keeps the KEK apart (a KMS or HSM in a
real deployment); a restore goes ahead only if the KEK it is given unwraps the backed-up keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ValidationError

from pipeline.database import Connection, connect, quote_ident
from pipeline.settings import Settings
from pipeline.vault import KeyEncryptionKeyError, kek_file, load_kek, unwrap_data_key

FORMAT = "bcl-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
TABLES = "tables"
FILES = "files"
# A backup holds private keys: nobody but its owner may list or read it.
PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600

Step = Callable[[str], None]
"""Told what is being backed up or restored now, for a progress line."""


@dataclass(frozen=True)
class BackedUpTable:
    schema: str
    name: str
    holds: str

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def file(self) -> str:
        """Its dump's path in a backup."""
        return f"{TABLES}/{self.qualified}.csv"


@dataclass(frozen=True)
class BackedUpFolder:
    name: str
    location: Callable[[Settings], Path]
    holds: str


DATA_KEYS = BackedUpTable(
    "vault", "data_keys", "each resident's data key, wrapped by the key-encryption key"
)

# What a backup holds, in the order a restore loads it: the data keys first, so a wrong KEK is
# found before anything else is loaded.
BACKED_UP_TABLES = (
    DATA_KEYS,
    BackedUpTable(
        "intake",
        "batches",
        "the push intake ledger: each municipality's accepted, held and publishing batches",
    ),
    BackedUpTable("platform", "outbox", "decisions committed but not yet published to the log"),
)
BACKED_UP_FOLDERS = (
    BackedUpFolder("keys", lambda s: s.home / "keys", "municipalities' push-signing key pairs"),
    BackedUpFolder(
        "seals", lambda s: s.home / "seals", "municipalities' seal keys (pipeline.seals)"
    ),
    BackedUpFolder(
        "jpki", lambda s: s.jpki_home, "the JPKI test CA and the certificates written with it"
    ),
)
# Tables outside the projections' schemas that a backup leaves out, and why.
NOT_BACKED_UP = {
    "platform.dead_letters": "each letter is a record still on the log: a replay decodes it "
    "again and records it again (and each was published to the dead-letters topic)",
    "platform.schema_migrations": "`bcl up` applies the same migrations again",
}


class BackupError(Exception):
    """A backup or restore refused for a reason the operator can fix."""


class FileEntry(BaseModel):
    path: str  # relative to the backup folder, with forward slashes
    size: int
    sha256: str
    mode: str  # octal, e.g. "0600": what a restored file gets


class SequenceState(BaseModel):
    column: str
    last_value: int
    is_called: bool


class TableEntry(BaseModel):
    table: str
    file: str
    columns: list[str]
    rows: int
    sequences: list[SequenceState]


class FolderEntry(BaseModel):
    folder: str
    source: str  # where it was, for the reader: a restore puts it where its settings say
    files: int


class Manifest(BaseModel):
    format: Literal["bcl-backup"]
    format_version: Literal[1]
    created_at: datetime
    center: str
    bcl_version: str | None
    tables: list[TableEntry]
    folders: list[FolderEntry]
    files: list[FileEntry]


@dataclass(frozen=True)
class Count:
    """One line of a backup's or a restore's summary."""

    what: str  # a table, or a folder's name
    where: str  # "table", or the folder's path
    count: int
    unit: Literal["rows", "files"]


@dataclass(frozen=True)
class BackupReport:
    folder: Path
    counts: tuple[Count, ...]
    files: int
    size: int
    # A KEK file found inside a backed-up folder (BCL_KEK_FILE pointing there): left out.
    left_out: tuple[Path, ...]


# --- backup ----------------------------------------------------------------------------------


async def back_up(settings: Settings, folder: Path, *, step: Step | None = None) -> BackupReport:
    """Write a backup of ``settings``' center into ``folder``, new or empty.

    The manifest is written last: a folder without one is a backup that did not finish.
    """
    tell = step or (lambda _: None)
    await asyncio.to_thread(_empty_private_folder, folder)
    tell("tables")
    async with connect(settings) as connection:
        tables = await dump_tables(connection, folder)
    tell("key files")
    folders, left_out = await asyncio.to_thread(copy_key_folders, settings, folder)
    tell("checksums")
    files = await asyncio.to_thread(describe_files, folder)
    manifest = Manifest(
        format=FORMAT,
        format_version=FORMAT_VERSION,
        created_at=datetime.now(UTC),
        center=settings.center,
        bcl_version=_bcl_version(),
        tables=tables,
        folders=folders,
        files=files,
    )
    await asyncio.to_thread(_write_manifest, folder, manifest)
    return BackupReport(
        folder=folder,
        counts=_counts(settings, tables, folders),
        files=len(files),
        size=sum(f.size for f in files),
        left_out=tuple(left_out),
    )


async def dump_tables(connection: Connection, folder: Path) -> list[TableEntry]:
    """Dump every backed-up table into ``folder/tables`` from one snapshot, so the vault, the
    ledger and the outbox agree with each other as they stood at one moment."""
    await asyncio.to_thread(_private_folder, folder / TABLES)
    entries = []
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        await _fix_text_formats(connection)
        for table in BACKED_UP_TABLES:
            columns = await table_columns(connection, table)
            if not columns:
                raise BackupError(
                    f"table {table.qualified} does not exist: run `bcl up` to migrate the database"
                )
            status = await connection.copy_from_table(
                table.name,
                schema_name=table.schema,
                columns=columns,
                output=folder / table.file,
                format="csv",
                header=True,
            )
            sequences = []
            for column, sequence in await _sequences(connection, table):
                # Read after the rows: a sequence moves outside transactions, so it stands at
                # or past every value the snapshot's rows took from it.
                [state] = await connection.fetch(f"SELECT last_value, is_called FROM {sequence}")
                sequences.append(
                    SequenceState(
                        column=column, last_value=state["last_value"], is_called=state["is_called"]
                    )
                )
            entries.append(
                TableEntry(
                    table=table.qualified,
                    file=table.file,
                    columns=columns,
                    rows=int(status.rpartition(" ")[2]),
                    sequences=sequences,
                )
            )
    for table in BACKED_UP_TABLES:
        await asyncio.to_thread(os.chmod, folder / table.file, PRIVATE_FILE)
    return entries


def copy_key_folders(settings: Settings, folder: Path) -> tuple[list[FolderEntry], list[Path]]:
    """Copy each backed-up folder's files into ``folder/files/<name>``, with their modes;
    returns what each held and the KEK file if one was found among them (left out)."""
    kek = _kek_file(settings)
    entries, left_out = [], []
    for source in BACKED_UP_FOLDERS:
        location = source.location(settings)
        copied = 0
        for path in _files_under(location):
            if path.resolve() == kek:
                left_out.append(path)
                continue
            target = folder / FILES / source.name / path.relative_to(location)
            _write_file(target, path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
            copied += 1
        entries.append(FolderEntry(folder=source.name, source=str(location), files=copied))
    return entries, left_out


def describe_files(folder: Path) -> list[FileEntry]:
    """Every file of a backup but its manifest, with size, SHA-256 and mode, by path."""
    entries = []
    for path in _files_under(folder):
        relative = path.relative_to(folder).as_posix()
        if relative == MANIFEST:
            continue
        digest = hashlib.sha256()
        with path.open("rb") as data:
            while chunk := data.read(1 << 20):
                digest.update(chunk)
        info = path.stat()
        entries.append(
            FileEntry(
                path=relative,
                size=info.st_size,
                sha256=digest.hexdigest(),
                mode=f"{stat.S_IMODE(info.st_mode):04o}",
            )
        )
    return sorted(entries, key=lambda entry: entry.path)


# --- restore ---------------------------------------------------------------------------------


async def restore(
    settings: Settings, folder: Path, *, force: bool = False, step: Step | None = None
) -> tuple[Count, ...]:
    """Restore the backup in ``folder`` into ``settings``' center; returns what was restored.

    1. Verify the backup: every file its manifest lists, whole and unaltered, and nothing else.
    2. In one transaction, with the tables locked: refuse live data (a row in a backed-up table,
       a file in a backed-up folder) unless ``force``; stage the files beside their places;
       replace the tables' rows, setting their sequences where they stood; check that this
       center's KEK unwraps the backed-up data keys.
    3. Commit, then move the staged files into place (``force``: over the files of the same
       name; other files stay, a key the backup does not know is never deleted).
    Anything refused or failing before the commit leaves the center as it was.
    """
    tell = step or (lambda _: None)
    tell("checksums")
    manifest = await asyncio.to_thread(verified_manifest, folder)
    if manifest.center != settings.center:
        raise BackupError(
            f"{folder} is a backup of center {manifest.center}, this is {settings.center}: "
            f"set BCL_CENTER={manifest.center}"
        )
    tables = {entry.table: entry for entry in manifest.tables}
    staged: list[tuple[Path, Path]] = []
    try:
        async with connect(settings) as connection, connection.transaction():
            await _fix_text_formats(connection)
            for table in BACKED_UP_TABLES:
                await _check_columns(connection, table, tables[table.qualified], manifest)
                await connection.execute(
                    f"LOCK TABLE {_table_name(table)} IN ACCESS EXCLUSIVE MODE"
                )
            if not force:
                await _refuse_live_data(connection, settings)
            tell("key files")
            staged = await asyncio.to_thread(_stage_files, settings, folder, manifest)
            restored = []
            for table in BACKED_UP_TABLES:
                tell(table.qualified)
                restored.append(
                    await _load_table(connection, folder, table, tables[table.qualified])
                )
                if table is DATA_KEYS:
                    await _check_kek(connection, settings)
    except BaseException:
        await asyncio.to_thread(_discard, staged)
        raise
    await asyncio.to_thread(_put_in_place, staged)
    return _counts(settings, restored, manifest.folders)


def verified_manifest(folder: Path) -> Manifest:
    """The backup's manifest, once every file it lists is there with its size and checksum and
    no other file is; BackupError naming the files that are not."""
    if not folder.is_dir():
        raise BackupError(f"{folder} is not a folder")
    try:
        text = (folder / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise BackupError(
            f"{folder} has no {MANIFEST}: not a bcl backup, or one that did not finish"
        ) from None
    try:
        manifest = Manifest.model_validate_json(text)
    except ValidationError as error:
        invalid = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:3]
        )
        raise BackupError(
            f"{folder / MANIFEST} is not a manifest of {FORMAT} version {FORMAT_VERSION} "
            f"({invalid})"
        ) from None
    _check_contents(folder, manifest)
    found = {entry.path: entry for entry in describe_files(folder)}
    listed = {entry.path: entry for entry in manifest.files}
    problems = []
    for path, entry in listed.items():
        if path not in found:
            problems.append(f"{path} is missing")
        elif (found[path].size, found[path].sha256) != (entry.size, entry.sha256):
            problems.append(f"{path} does not match its checksum")
    problems += [f"{path} is not in the manifest" for path in found if path not in listed]
    if problems:
        raise BackupError(
            f"backup {folder} is damaged or was altered, refusing it: {'; '.join(problems)}"
        )
    return manifest


def _check_contents(folder: Path, manifest: Manifest) -> None:
    """The manifest describes this version's tables and folders, and names only files inside
    them (never a path that would climb out when restored)."""
    declared_tables = {t.qualified: t.file for t in BACKED_UP_TABLES}
    declared_folders = {f.name for f in BACKED_UP_FOLDERS}
    if {t.table: t.file for t in manifest.tables} != declared_tables or {
        f.folder for f in manifest.folders
    } != declared_folders:
        raise BackupError(
            f"{folder / MANIFEST} lists other tables or folders than this version backs up "
            f"({', '.join(declared_tables)}; {', '.join(sorted(declared_folders))})"
        )
    for entry in manifest.files:
        parts = PurePosixPath(entry.path).parts
        inside = (len(parts) == 2 and entry.path in declared_tables.values()) or (
            len(parts) > 2 and parts[0] == FILES and parts[1] in declared_folders
        )
        if not inside or any(part in ("", ".", "..") for part in parts) or "\\" in entry.path:
            raise BackupError(f"{folder / MANIFEST} lists {entry.path!r}, outside the backup")


async def _check_columns(
    connection: Connection, table: BackedUpTable, entry: TableEntry, manifest: Manifest
) -> None:
    columns = await table_columns(connection, table)
    if not columns:
        raise BackupError(
            f"table {table.qualified} does not exist: run `bcl up` first (it applies the "
            "migrations)"
        )
    missing = [column for column in entry.columns if column not in columns]
    if missing:
        raise BackupError(
            f"table {table.qualified} has no column {', '.join(missing)}: this database is "
            f"migrated to an older version than the backup's ({manifest.bcl_version or 'unknown'}"
            "); run `bcl up` with that version or a newer one"
        )


async def _refuse_live_data(connection: Connection, settings: Settings) -> None:
    live = []
    for table in BACKED_UP_TABLES:
        rows = await connection.fetchval(f"SELECT count(*) FROM {_table_name(table)}")
        if rows:
            live.append(f"{table.qualified} has {_counted(rows, 'row')}")
    for source, files in await asyncio.to_thread(_key_files_present, settings):
        live.append(f"{source} holds {_counted(files, 'file')}")
    if live:
        raise BackupError(
            f"this center holds live data ({'; '.join(live)}): restore onto a fresh center "
            "(`bcl up` on an empty BCL_HOME and database), or pass --force to replace it"
        )


async def _load_table(
    connection: Connection, folder: Path, table: BackedUpTable, entry: TableEntry
) -> TableEntry:
    await connection.execute(f"TRUNCATE {_table_name(table)}")
    status = await connection.copy_to_table(
        table.name,
        schema_name=table.schema,
        columns=entry.columns,
        source=folder / entry.file,
        format="csv",
        header=True,
    )
    sequences = dict(await _sequences(connection, table))
    for state in entry.sequences:
        # A column that no longer draws from a sequence needs none set.
        if state.column in sequences:
            await connection.execute(
                "SELECT setval($1::regclass, $2, $3)",
                sequences[state.column],
                state.last_value,
                state.is_called,
            )
    return entry.model_copy(update={"rows": int(status.rpartition(" ")[2])})


async def _check_kek(connection: Connection, settings: Settings) -> None:
    """This center's KEK must unwrap the backed-up data keys; one is enough to tell, since a
    vault's keys are all wrapped by one KEK. Never makes a KEK file: a new key would open none."""
    row = await connection.fetchrow(
        f"SELECT key_id, wrapped_key FROM {_table_name(DATA_KEYS)} "
        "WHERE wrapped_key IS NOT NULL LIMIT 1"
    )
    if row is None:
        return
    original = (
        "set BCL_KEK or BCL_KEK_FILE to the original key-encryption key, the one the backed-up "
        "center used (it is never in a backup)"
    )
    try:
        kek = load_kek(settings, create=False)
    except KeyEncryptionKeyError as error:
        raise BackupError(f"{error}; {original}") from None
    try:
        unwrap_data_key(kek, row["key_id"], row["wrapped_key"])
    except KeyEncryptionKeyError:
        # Named, since a fresh `bcl up` makes a new key file of its own when none is given.
        in_use = "BCL_KEK" if settings.kek else f"the file {kek_file(settings)}"
        raise BackupError(
            f"the key-encryption key in use ({in_use}) does not unwrap the backed-up data keys: "
            f"{original}"
        ) from None


def _stage_files(settings: Settings, folder: Path, manifest: Manifest) -> list[tuple[Path, Path]]:
    """Each backed-up file written beside its place under a temporary name, with its mode;
    returns (staged, place) pairs."""
    places = {source.name: source.location(settings) for source in BACKED_UP_FOLDERS}
    kek = _kek_file(settings)
    staged = []
    for entry in manifest.files:
        top, name, *rest = PurePosixPath(entry.path).parts
        if top != FILES:
            continue
        place = places[name].joinpath(*rest)
        if place.resolve() == kek:
            raise BackupError(f"the backup holds {entry.path}, which would replace the KEK {kek}")
        temporary = place.with_name(f".{place.name}.restoring")
        _write_file(temporary, (folder / entry.path).read_bytes(), int(entry.mode, 8))
        staged.append((temporary, place))
    return staged


def _put_in_place(staged: list[tuple[Path, Path]]) -> None:
    for temporary, place in staged:
        os.replace(temporary, place)


def _discard(staged: list[tuple[Path, Path]]) -> None:
    for temporary, _ in staged:
        temporary.unlink(missing_ok=True)


def _key_files_present(settings: Settings) -> list[tuple[Path, int]]:
    """Each backed-up folder of this center that holds files (the KEK file aside)."""
    kek = _kek_file(settings)
    present = []
    for source in BACKED_UP_FOLDERS:
        location = source.location(settings)
        files = sum(1 for path in _files_under(location) if path.resolve() != kek)
        if files:
            present.append((location, files))
    return present


# --- shared ----------------------------------------------------------------------------------


async def table_columns(connection: Connection, table: BackedUpTable) -> list[str]:
    """The table's columns in order; none when it does not exist."""
    rows = await connection.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum",
        _table_name(table),
    )
    return [row["attname"] for row in rows]


async def _sequences(connection: Connection, table: BackedUpTable) -> list[tuple[str, str]]:
    """(column, sequence) of each column that draws from a sequence (serial, identity)."""
    rows = await connection.fetch(
        "SELECT attname, pg_get_serial_sequence($1, attname) AS sequence FROM pg_attribute "
        "WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped "
        "AND pg_get_serial_sequence($1, attname) IS NOT NULL ORDER BY attnum",
        _table_name(table),
    )
    return [(row["attname"], row["sequence"]) for row in rows]


async def _fix_text_formats(connection: Connection) -> None:
    # The CSV must read back as it was written whatever the server's or the session's defaults.
    await connection.execute(
        "SET LOCAL timezone TO 'UTC'; SET LOCAL datestyle TO 'ISO, YMD'; "
        "SET LOCAL bytea_output TO 'hex'"
    )


def _counted(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _table_name(table: BackedUpTable) -> str:
    return f"{quote_ident(table.schema)}.{quote_ident(table.name)}"


def _counts(
    settings: Settings, tables: list[TableEntry], folders: list[FolderEntry]
) -> tuple[Count, ...]:
    places = {source.name: source.location(settings) for source in BACKED_UP_FOLDERS}
    return (
        *(Count(t.table, "table", t.rows, "rows") for t in tables),
        *(Count(f.folder, str(places[f.folder]), f.files, "files") for f in folders),
    )


def _kek_file(settings: Settings) -> Path | None:
    """The KEK file's real path when the KEK is kept in a file (BCL_KEK unset)."""
    return None if settings.kek else kek_file(settings).resolve()


def _files_under(folder: Path) -> list[Path]:
    """The files below ``folder``, by path; none when it does not exist. Symbolic links to
    folders are not followed, so a backup never wanders outside the folder."""
    found: list[Path] = []
    for root, _, names in os.walk(folder):
        found.extend(path for name in names if (path := Path(root) / name).is_file())
    return sorted(found)


def _empty_private_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise BackupError(f"{folder} is a file; give a new or empty folder for the backup")
    if folder.is_dir() and any(folder.iterdir()):
        raise BackupError(
            f"{folder} is not empty; give a new or empty folder (a backup is never mixed with "
            "other files)"
        )
    _private_folder(folder)
    os.chmod(folder, PRIVATE_FOLDER)  # an empty folder the operator made is private too


def _private_folder(folder: Path) -> None:
    """``folder`` and its missing parents made, each 0700 (``mkdir -p`` would leave the parents
    to the umask); folders that exist are left as they are."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for made in reversed(missing):
        made.mkdir()
        os.chmod(made, PRIVATE_FOLDER)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """``data`` as a new file at ``path``, synced, then given ``mode``: private while written."""
    _private_folder(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(path, mode)


def _write_manifest(folder: Path, manifest: Manifest) -> None:
    _write_file(folder / MANIFEST, manifest.model_dump_json(indent=2).encode(), PRIVATE_FILE)
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _bcl_version() -> str | None:
    try:
        return metadata.version("bcl-pipeline")
    except metadata.PackageNotFoundError:
        return None
