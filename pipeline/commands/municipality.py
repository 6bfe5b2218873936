"""`bcl municipality add/show/list/update`: the registry of participating municipalities."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from pydantic import ValidationError
from rich.table import Table

from pipeline.commands.common import (
    CommandError,
    aware_time,
    clean_errors,
    console,
    run_async,
    settings,
    validation_problems,
    with_options,
)

app = typer.Typer(help="The registry of participating municipalities.", no_args_is_help=True)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _window(text: str, what: str) -> dict[str, str]:
    opens, sep, closes = text.partition("-")
    if not sep:
        raise CommandError(f"{what} {text!r}: write it as HH:MM-HH:MM, e.g. 06:30-23:00")
    return {"opens": opens.strip(), "closes": closes.strip()}


def _counter_hours(text: str) -> dict[str, dict[str, str]]:
    """``mon-fri=08:30-17:15,sat=09:00-12:00`` → {weekday: window}."""
    hours: dict[str, dict[str, str]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        days, sep, window = part.partition("=")
        if not sep:
            raise CommandError(
                f"counter hours {part!r}: write DAYS=HH:MM-HH:MM, e.g. mon-fri=08:30-17:15"
            )
        first, _, last = days.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise CommandError(f"counter hours {part!r}: days are {', '.join(WEEKDAYS)}")
        span = WEEKDAYS[WEEKDAYS.index(first) : WEEKDAYS.index(last or first) + 1]
        for day in span:
            hours[day] = _window(window, "counter hours")
    return hours


def _fees(entries: list[str]) -> list[dict[str, Any]]:
    """``juminhyo=300@2024-04-01`` → fee entries."""
    fees = []
    for entry in entries:
        kind, sep, rest = entry.partition("=")
        yen, at, since = rest.partition("@")
        if not sep or not at:
            raise CommandError(
                f"fee {entry!r}: write TYPE=YEN@YYYY-MM-DD, e.g. juminhyo=300@2024-04-01"
            )
        fees.append({"certificate_type": kind, "fee_yen": yen, "effective_from": since})
    return fees


def _maintenance(entries: list[str]) -> list[dict[str, str]]:
    """``2024-06-01T01:00+09:00/2024-06-01T05:00+09:00=system update``."""
    windows = []
    for entry in entries:
        span, _, reason = entry.partition("=")
        starts, sep, ends = span.partition("/")
        if not sep:
            raise CommandError(
                f"maintenance {entry!r}: write START/END=REASON with ISO times and offsets"
            )
        windows.append({"starts_at": starts, "ends_at": ends, "reason": reason or "maintenance"})
    return windows


def _changes(name: str | None, given: ProfileOptions) -> dict[str, Any]:
    """The profile fields given, as the registry takes them."""
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if given.mayor is not None:
        changes["mayor"] = given.mayor
    if given.disaster_system is not None:
        changes["disaster_system_since"] = given.disaster_system
    if given.own_server is not None:
        changes["uses_bcl"] = not given.own_server
    if given.municipality_class is not None:
        changes["municipality_class"] = given.municipality_class
    if given.population is not None:
        changes["population"] = given.population
    if given.offers is not None:
        changes["offered_types"] = [t.strip() for t in given.offers.split(",") if t.strip()]
    if given.weekday_only is not None:
        changes["weekday_only_types"] = [
            t.strip() for t in given.weekday_only.split(",") if t.strip()
        ]
    if given.window is not None:
        changes["service_window"] = _window(given.window, "service window")
    if given.counter is not None:
        changes["counter_hours"] = _counter_hours(given.counter)
    if given.connection_hours is not None:
        changes["connection_hours"] = _window(given.connection_hours, "connection hours")
    if given.holiday:
        changes["holidays"] = [d for text in given.holiday for d in text.split(",") if d]
    if given.maintenance:
        changes["maintenance"] = _maintenance(given.maintenance)
    if given.fee:
        changes["fees"] = _fees(given.fee)
    if given.public_key is not None:
        try:
            changes["push_public_key"] = given.public_key.read_text()
        except OSError as error:
            raise CommandError(f"cannot read the public key {given.public_key}: {error}") from None
    return changes


def _refuse_invalid(error: ValidationError) -> CommandError:
    return CommandError(f"the profile is not valid: {validation_problems(error, 'profile')}")


Name = Annotated[str | None, typer.Option(help="Municipality name, e.g. 横浜市.")]
OwnServer = Annotated[
    bool | None,
    typer.Option("--own-server/--bcl", help="Runs its own issuance server, or pushes to BCL."),
]
Class = Annotated[
    str | None,
    typer.Option(
        "--class", help="designated_city, special_ward, city, town or village (for fees)."
    ),
]
Population = Annotated[int | None, typer.Option(help="Resident-register population (for fees).")]
Offers = Annotated[str | None, typer.Option(help="Offered certificate types, comma-separated.")]
WeekdayOnly = Annotated[str | None, typer.Option(help="Types offered on weekdays only.")]
Window = Annotated[str | None, typer.Option(help="Service window inside 06:30-23:00.")]
Counter = Annotated[
    str | None, typer.Option(help="Counter hours, e.g. mon-fri=08:30-17:15,sat=09:00-12:00.")
]
ConnectionHours = Annotated[str | None, typer.Option(help="Link AP connection hours, HH:MM-HH:MM.")]
Holidays = Annotated[list[str] | None, typer.Option("--holiday", help="Closed day(s), YYYY-MM-DD.")]
Maintenance = Annotated[
    list[str] | None, typer.Option(help="Announced maintenance START/END=REASON (ISO times).")
]
Fees = Annotated[
    list[str] | None, typer.Option("--fee", help="Resident fee TYPE=YEN@YYYY-MM-DD (repeatable).")
]
PublicKey = Annotated[
    Path | None, typer.Option(help="PEM Ed25519 public key its pushes are signed with.")
]
Mayor = Annotated[
    str | None,
    typer.Option(help="The mayor as printed on certificates, e.g. 千代田区長 樋口 高顕."),
]
DisasterSystem = Annotated[
    str | None,
    typer.Option(
        help="The day it introduced the cloud disaster victim support system, YYYY-MM-DD "
        "(for its yearly fee)."
    ),
]


@dataclass(frozen=True)
class ProfileOptions:
    """The profile's options, the same for `add` and `update` (None: not given)."""

    own_server: OwnServer = None
    municipality_class: Class = None
    population: Population = None
    offers: Offers = None
    weekday_only: WeekdayOnly = None
    window: Window = None
    counter: Counter = None
    connection_hours: ConnectionHours = None
    holiday: Holidays = None
    maintenance: Maintenance = None
    fee: Fees = None
    public_key: PublicKey = None
    mayor: Mayor = None
    disaster_system: DisasterSystem = None


@app.command()
@clean_errors
@with_options(ProfileOptions, into="options")
def add(
    code: Annotated[str, typer.Argument(help="6-digit municipality code with check digit.")],
    name: Annotated[str, typer.Option(help="Municipality name, e.g. 横浜市.")],
    joined: Annotated[str, typer.Option(help="Joining date YYYY-MM-DD (default: today).")] = "",
    *,
    options: ProfileOptions,
) -> None:
    """Register a municipality joining the service.

    Without --public-key, a push-signing key pair is made for it under $BCL_HOME/keys/ (the
    private key is the municipality's to keep; only the public key enters the registry), or the
    pair already there for the code is reused, as when registering it again on a new log.
    """
    from pipeline.signing import (
        SigningKeyError,
        generate_signing_key,
        key_pair_paths,
        public_key_pem,
        read_key_pair,
        write_key_pair,
    )
    from producers.registry import RegistryError, join, registered_profile
    from schemas.codes import is_valid_municipality_code
    from schemas.events.municipalities import MunicipalityProfile

    if not is_valid_municipality_code(code):
        raise CommandError(f"{code!r} is not a valid municipality code (6 digits, check digit)")
    current = settings()
    changes = _changes(name, options)
    changes.setdefault("uses_bcl", True)
    if run_async(registered_profile(current, code, refresh_first=True)) is not None:
        raise CommandError(
            f"municipality {code} is already registered; change it with `bcl municipality update`"
        )
    keys = current.home / "keys"
    try:
        kept_key = None if options.public_key else read_key_pair(keys, code)
    except SigningKeyError as error:
        raise CommandError(
            f"{error}; put the matching pair back, move both files away to make a new pair, "
            "or give the municipality's own public key with --public-key"
        ) from None
    push_key = None if options.public_key else kept_key or generate_signing_key()
    if push_key is not None:
        changes["push_public_key"] = public_key_pem(push_key)
    try:
        profile = MunicipalityProfile.model_validate(changes)
        joined_on = date.fromisoformat(joined) if joined else date.today()
    except ValidationError as error:
        raise _refuse_invalid(error) from None
    except ValueError as error:
        raise CommandError(f"--joined {joined!r}: {error}") from None
    # The key files are written only once the profile is valid, and before it is published:
    # a registered public key whose private half was lost could never push.
    if push_key is not None and kept_key is None:
        write_key_pair(keys, code, push_key)
    try:
        run_async(join(current, code, joined_on, profile))
    except RegistryError as error:
        raise CommandError(str(error)) from None
    console.print(f"registered {code} {profile.name} (joined {joined_on})")
    if push_key is not None:
        private_path, public_path = key_pair_paths(keys, code)
        reused = "reused the existing key " if kept_key else ""
        console.print(f"push-signing key: {reused}{private_path} (public: {public_path})")


@app.command()
@clean_errors
@with_options(ProfileOptions, into="options")
def update(
    code: Annotated[str, typer.Argument(help="The municipality to change.")],
    name: Name = None,
    *,
    options: ProfileOptions,
) -> None:
    """Change a registered municipality's profile; unnamed fields keep their value.

    --holiday, --maintenance and --fee replace the whole list (give every entry).
    """
    from producers.registry import RegistryError
    from producers.registry import update as publish_update

    changes = _changes(name, options)
    if not changes:
        raise CommandError("nothing to change: give at least one option (see --help)")
    try:
        profile = run_async(publish_update(settings(), code, changes))
    except ValidationError as error:
        raise _refuse_invalid(error) from None
    except RegistryError as error:
        raise CommandError(str(error)) from None
    console.print(f"updated {code} {profile.name}: {', '.join(sorted(changes))}")


@app.command()
@clean_errors
def show(
    code: Annotated[str, typer.Argument(help="The municipality to show.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON.")] = False,
) -> None:
    """A municipality's registered profile."""
    from pipeline.catchup import refresh
    from pipeline.database import connect
    from pipeline.projection import load_projection

    async def fetch() -> Any:
        await refresh(settings(), load_projection("registry", settings()))
        async with connect(settings()) as connection:
            return await connection.fetchrow(
                "SELECT * FROM registry.municipalities WHERE code = $1", code
            )

    row = run_async(fetch())
    if row is None:
        raise CommandError(f"municipality {code} is not registered")
    profile = orjson.loads(row["profile"])
    if as_json:
        console.print_json(
            orjson.dumps({"code": code, "joined_on": row["joined_on"], **profile}).decode()
        )
        return
    table = Table(title=f"{code} {row['name']}", show_header=False)
    table.add_row("joined", str(row["joined_on"]))
    table.add_row("updated", str(row["updated_at"]))
    for field, value in profile.items():
        if field != "push_public_key":
            table.add_row(
                field, orjson.dumps(value).decode() if not isinstance(value, str) else value
            )
    table.add_row("push key", "registered" if row["push_public_key"] else "none (cannot push)")
    console.print(table)


@app.command(name="list")
@clean_errors
def list_municipalities() -> None:
    """Every registered municipality."""
    from pipeline.catchup import refresh
    from pipeline.database import connect
    from pipeline.projection import load_projection

    async def fetch() -> list[Any]:
        await refresh(settings(), load_projection("registry", settings()))
        async with connect(settings()) as connection:
            return list(
                await connection.fetch(
                    "SELECT code, name, uses_bcl, municipality_class, population, joined_on, "
                    "push_public_key IS NOT NULL AS can_push FROM registry.municipalities "
                    "ORDER BY code"
                )
            )

    table = Table(title="municipalities")
    for column in ("code", "name", "BCL", "class", "population", "joined", "push key"):
        table.add_column(column)
    rows = run_async(fetch())
    for row in rows:
        table.add_row(
            row["code"],
            row["name"],
            "yes" if row["uses_bcl"] else "own server",
            row["municipality_class"],
            f"{row['population']:,}",
            str(row["joined_on"]),
            "yes" if row["can_push"] else "no",
        )
    console.print(table)
    console.print(f"{len(rows)} municipalities ({datetime.now():%Y-%m-%d %H:%M})")


seal_key_app = typer.Typer(
    help="Electronic seal keys (電子契印) that certificates issued for a municipality carry.",
    no_args_is_help=True,
)
app.add_typer(seal_key_app, name="seal-key")


@seal_key_app.command("create")
@clean_errors
def create_seal_key(
    code: Annotated[str, typer.Argument(help="The municipality.")],
) -> None:
    """Make a new ECDSA P-256 seal key: BCL keeps the private key under $BCL_HOME/seals/, the
    public key enters the registry, and certificates are sealed with it from now on."""
    from producers.registry import RegistryError
    from producers.registry import create_seal_key as create

    try:
        key = run_async(create(settings(), code))
    except RegistryError as error:
        raise CommandError(str(error)) from None
    console.print(f"seal key {key.key_id} of {code} added at {key.added_at:%Y-%m-%d %H:%M:%S%z}")


@seal_key_app.command("import")
@clean_errors
def import_seal_key(
    code: Annotated[str, typer.Argument(help="The municipality.")],
    key_file: Annotated[
        Path,
        typer.Option(
            "--key",
            help="Its ECDSA P-256 private key: PEM, PKCS#8 or traditional EC "
            "(BEGIN EC PRIVATE KEY).",
        ),
    ],
    password_file: Annotated[
        Path | None,
        typer.Option(help="For an encrypted key: a file whose first line is its password."),
    ] = None,
) -> None:
    """Register a seal key the municipality already has: BCL keeps the private key under
    $BCL_HOME/seals/ as `create` does, and the public key enters the registry and seals from now
    on. A key already registered (e.g. after a restore) is not listed twice, only kept; a revoked
    key is refused."""
    from pipeline.seals import read_seal_private_key
    from pipeline.signing import SigningKeyError
    from producers.registry import RegistryError
    from producers.registry import import_seal_key as register

    try:
        pem = key_file.read_bytes()
        # The first line, as openssl's `-passin file:` reads it.
        password = password_file.read_bytes().splitlines()[0] if password_file else None
    except OSError as error:
        raise CommandError(f"cannot read {error.filename}: {error.strerror}") from None
    except IndexError:
        raise CommandError(f"the password file {password_file} is empty") from None
    try:
        key = read_seal_private_key(pem, password)
    except SigningKeyError as error:
        raise CommandError(f"{key_file}: {error}") from None
    try:
        imported = run_async(register(settings(), code, key))
    except (RegistryError, SigningKeyError) as error:
        raise CommandError(str(error)) from None
    entry = imported.key
    listing = (
        f"added at {entry.added_at:%Y-%m-%d %H:%M:%S%z}; it seals from now on"
        if imported.newly_listed
        else f"already registered (added at {entry.added_at:%Y-%m-%d %H:%M:%S%z})"
    )
    keeping = "stored at" if imported.newly_stored else "already kept at"
    console.print(
        f"seal key {entry.key_id} of {code} {listing}; private key {keeping} "
        f"{imported.private_path}"
    )


@seal_key_app.command("export")
@clean_errors
def export_seal_key(
    code: Annotated[str, typer.Argument(help="The municipality.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the PEM.")],
    key_id: Annotated[str | None, typer.Option(help="Which key (default: the newest).")] = None,
) -> None:
    """Write a seal public key as PEM, for `openssl dgst -sha256 -verify`."""
    from producers.registry import RegistryError, seal_key

    try:
        key = run_async(seal_key(settings(), code, key_id))
    except RegistryError as error:
        raise CommandError(str(error)) from None
    output.write_text(key.public_key)
    state = f"revoked at {key.revoked_at}" if key.revoked_at else "in force"
    console.print(f"wrote seal key {key.key_id} of {code} ({state}) to {output}")


@seal_key_app.command("revoke")
@clean_errors
def revoke_seal_key(
    code: Annotated[str, typer.Argument(help="The municipality.")],
    key_id: Annotated[str, typer.Argument(help="The compromised key.")],
    at: Annotated[
        str | None, typer.Option(help="Since when, ISO time with zone (default: now).")
    ] = None,
) -> None:
    """Mark a seal key compromised: certificates it sealed no longer verify as valid."""
    from producers.registry import RegistryError
    from producers.registry import revoke_seal_key as revoke

    since = aware_time(at) or datetime.now(UTC)
    try:
        key = run_async(revoke(settings(), code, key_id, since))
    except RegistryError as error:
        raise CommandError(str(error)) from None
    console.print(f"seal key {key.key_id} of {code} revoked from {key.revoked_at}")
