"""What every `bcl` command shares: the consoles, settings, and turning errors into one line."""

from __future__ import annotations

import asyncio
import errno
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import fields
from datetime import datetime
from enum import StrEnum
from functools import wraps
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, get_type_hints

import typer
from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from pipeline.settings import ServicesNotRunning, Settings, load_settings

if TYPE_CHECKING:
    from pipeline.database import Connection

console = Console()
# An error is one line however narrow the terminal: scripts and logs read it whole.
errors = Console(stderr=True, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")


class CommandError(Exception):
    """An error the user can act on; printed without a traceback."""


def _dotted(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location)


def validation_problems(
    error: ValidationError,
    whole: str = "",
    *,
    field: Callable[[tuple[int | str, ...]], str] = _dotted,
) -> str:
    """Each problem pydantic found as ``field: message``: ``field`` names a field from its
    location as the user spells it, ``whole`` names the model itself (empty: the message alone).
    """
    problems = []
    for found in error.errors(include_url=False):
        where = field(found["loc"]) if found["loc"] else whole
        message = str(found["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)


def clean_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the failures a user can fix into one readable line and exit status 2."""

    @wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (CommandError, ServicesNotRunning, LookupError) as error:
            print_error(str(error))
            raise typer.Exit(2) from None
        except (KafkaConnectionError, ConnectionError, TimeoutError) as error:
            print_error(_unreachable(error))
            raise typer.Exit(2) from None
        except OSError as error:
            # asyncio reports failed connects as a bare OSError; anything else is about a file.
            if error.errno in _NETWORK_ERRNOS or "Connect call failed" in str(error):
                print_error(_unreachable(error))
            else:
                print_error(str(error))
            raise typer.Exit(2) from None
        except KafkaError as error:
            print_error(f"Kafka refused the request: {error}")
            raise typer.Exit(2) from None

    return run


_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ETIMEDOUT,
}


def with_options(shared: type[Any], into: str) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Give a command the fields of the dataclass ``shared`` (each annotated as a Typer option,
    default None) as options of its own, in the place of its parameter ``into``, and hand them
    to it together there: commands that share options declare them once."""

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        hints = get_type_hints(shared, include_extras=True)
        options = [
            inspect.Parameter(field.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                              annotation=hints[field.name])
            for field in fields(shared)
        ]  # fmt: skip

        @wraps(command)
        def run(**given: Any) -> R:
            gathered = shared(**{option.name: given.pop(option.name) for option in options})
            return command(**given, **{into: gathered})

        own = inspect.signature(command, eval_str=True).parameters.values()
        # Typer reads a command's options from its signature.
        run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [p for parameter in own for p in (options if parameter.name == into else [parameter])]
        )
        return run

    return decorate


def print_error(message: str) -> None:
    """``error: message`` on stderr; the message's own brackets are text, never markup."""
    errors.print(f"[red]error:[/red] {escape(message)}")


def _unreachable(error: BaseException) -> str:
    return f"cannot reach a service ({error}); is it running? Try `bcl status`, or `bcl up`."


def run_async(coroutine: Coroutine[Any, Any, R]) -> R:
    return asyncio.run(coroutine)


class CenterName(StrEnum):
    """A certificate center as a command-line choice (``pipeline.settings.Center``)."""

    EAST = "east"
    WEST = "west"


def settings() -> Settings:
    try:
        return load_settings()
    except ValidationError as error:
        # Fields named as the environment spells them: what the user set.
        problems = validation_problems(error, field=lambda location: f"BCL_{location[0]}".upper())
        raise CommandError(f"{problems} (fix the environment)") from None


def aware_time(value: str | None, option: str = "--at") -> datetime | None:
    """An ISO date-time option with its time zone, or None when not given."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"{option} {value!r} is not an ISO date-time like 2026-04-01T09:30+09:00"
        ) from None
    if moment.tzinfo is None:
        raise CommandError(f"{option} {value!r} needs a time zone, like 2026-04-01T09:30+09:00")
    return moment


def read_projection(name: str, read: Callable[[Connection], Awaitable[R]]) -> R:
    """Bring projection ``name`` level with the log, then ``read`` it: a statement is never
    older than the log it is printed from.

    A processor (the disaster desk) is read as its live worker left it, with a warning when the
    worker has events still to apply: whoever applies a processor's events decides them, and a
    read must never publish decisions."""
    from pipeline.catchup import refresh
    from pipeline.database import connect
    from pipeline.projection import Processor, load_projection
    from pipeline.status import projection_lag

    async def run() -> R:
        current = settings()
        projection = load_projection(name, current)
        if isinstance(projection, Processor):
            behind = (await projection_lag(current, projection)).lag
            if behind > 0:
                errors.print(
                    f"[yellow]warning:[/yellow] the {name} worker has {behind:,} events still "
                    "to apply; this shows what it has applied (is `bcl worker` running?)"
                )
        else:
            await refresh(current, projection)
        async with connect(current) as connection:
            return await read(connection)

    return run_async(run())
