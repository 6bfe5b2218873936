"""Runtime settings, read from ``BCL_*`` environment variables.

The defaults run everything embedded: the broker and Postgres that ``bcl up`` starts write their
addresses to ``$BCL_HOME/<center>/services.json`` and every other command reads them from there.
Setting ``BCL_KAFKA_BOOTSTRAP`` and ``BCL_DATABASE_URL`` points the same code at real services.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Center = Literal["east", "west"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ServicesNotRunning(RuntimeError):
    """Neither an external service is configured nor an embedded one is up."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BCL_", frozen=True, extra="ignore")

    home: Path = Field(
        default=PROJECT_ROOT / ".bcl",
        description="The one folder holding embedded services' data, logs and PID files.",
    )
    center: Center = Field(default="east", description="The certificate center this process is.")
    peers: Annotated[tuple[Center, ...], NoDecode] = Field(
        default=(),
        description="The other centers whose mirrored topics this center reads too (BCL_PEERS="
        "west): MirrorMaker 2 names a copy '<center>.<topic>'. Empty: one center.",
    )
    kafka_bootstrap: str | None = Field(default=None, description="External Kafka bootstrap.")
    database_url: str | None = Field(default=None, description="External Postgres URL.")
    broker_storage: Literal["s3", "memory"] = Field(
        default="s3",
        description="Where the embedded broker keeps the log: 's3', durably in the embedded "
        "object store under $BCL_HOME/<center>/storage; 'memory', lost when the broker stops "
        "(for tests that want speed).",
    )
    partitions: int = Field(default=6, ge=1, description="Partitions of each topic created.")
    topic_prefix: str = Field(
        default="", description="Prefix of every topic name, to share one cluster between uses."
    )

    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: Path | None = None
    # Unset: idempotent where the broker allows it (real Kafka), plain acks=all where it does not
    # (the embedded tansu). True insists, False never asks.
    kafka_idempotence: bool | None = None

    kek: SecretStr | None = Field(
        default=None,
        description="Key-encryption key, base64 of 32 bytes; wraps every resident's data key.",
    )
    kek_file: Path | None = Field(
        default=None, description="File holding the key-encryption key (default $BCL_HOME/kek)."
    )
    jpki_ca_dir: Path | None = Field(
        default=None,
        description="Folder of the JPKI CA whose CRLs are trusted (ca.pem; the test CA also keeps "
        "ca.key.pem there). Default $BCL_HOME/jpki.",
    )
    push_max_bytes: int = Field(
        default=1 << 30, ge=1, description="Largest resident-data file `bcl push` accepts."
    )

    batch_size: int = Field(default=2000, ge=1, description="Events per live projection batch.")
    batch_within: float = Field(default=0.2, gt=0, description="Seconds a live batch may wait.")
    replay_batch_size: int = Field(default=20000, ge=1)
    fetch_wait: float = Field(
        default=0.03,
        gt=0,
        le=30,
        description="Seconds a live consumer's fetch may wait for new records. tansu answers a "
        "waiting fetch only when the wait is over, so each hop through a live agent can take "
        "this long; on Kafka, a longer wait only means fewer idle fetches.",
    )
    answer_window: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a kiosk waits for the answer; a request its center could not answer "
        "by then (the center was down) is expired, not decided, when the center returns.",
    )
    background_nice: int = Field(
        default=19,
        ge=0,
        le=19,
        description="CPU niceness of a center's background worker (the projections nobody "
        "waits on at a kiosk): when the machine is busy, the issuance path gets the CPU first.",
    )
    render_processes: int = Field(
        default=2, ge=0, description="Processes drawing certificate PDFs (0: in the worker)."
    )

    @field_validator("peers", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _not_its_own_peer(self) -> Self:
        if self.center in self.peers:
            raise ValueError(
                f"BCL_PEERS lists {self.center}, the center this process is; list the others"
            )
        return self

    @property
    def jpki_home(self) -> Path:
        return self.jpki_ca_dir or self.home / "jpki"

    def topic(self, name: str) -> str:
        """The physical name of a catalog topic."""
        return self.topic_prefix + name

    def mirrored(self, center: str, name: str) -> str:
        """The physical name, in this center's cluster, of ``center``'s copy of a topic."""
        return self.topic(f"{center}.{name}")

    def subscribed(self, *names: str) -> list[str]:
        """Catalog topics as this center's consumers read them: each local topic, then each
        peer's mirrored copy of it."""
        return [
            physical
            for name in names
            for physical in (self.topic(name), *(self.mirrored(p, name) for p in self.peers))
        ]

    def is_local(self, topic: str) -> bool:
        """Whether a physical topic is this center's own, not a peer's mirrored copy."""
        return not any(topic.startswith(self.mirrored(peer, "")) for peer in self.peers)

    def for_center(self, center: Center, peers: Sequence[Center] | None = None) -> Settings:
        """The same settings as ``center`` sees them: its embedded services, and as peers
        ``peers`` (default: every other center this one knows)."""
        if peers is None:
            peers = tuple(c for c in (self.center, *self.peers) if c != center)
        # Made anew, not copied: a copy would keep the services this center's file cached.
        return Settings(
            **{**dict(self), "center": center, "peers": tuple(peers), "kafka_bootstrap": None,
               "database_url": None}
        )  # fmt: skip

    def topology(self, centers: Sequence[Center]) -> list[Settings]:
        """Each of ``centers`` as it sees itself, reading the copies of all the others."""
        return [self.for_center(c, [o for o in centers if o != c]) for c in centers]

    @property
    def center_home(self) -> Path:
        return self.home / self.center

    @property
    def services_file(self) -> Path:
        return self.center_home / "services.json"

    @cached_property
    def _embedded(self) -> dict[str, str]:
        try:
            data = json.loads(self.services_file.read_text())
        except FileNotFoundError:
            return {}
        return {k: v for k, v in data.items() if isinstance(v, str)}

    @property
    def bootstrap(self) -> str:
        if self.kafka_bootstrap:
            return self.kafka_bootstrap
        if "kafka_bootstrap" in self._embedded:
            return self._embedded["kafka_bootstrap"]
        raise ServicesNotRunning(
            f"no Kafka broker for center {self.center!r}: run `bcl up` to start the embedded one, "
            "or set BCL_KAFKA_BOOTSTRAP to a running cluster"
        )

    @property
    def dsn(self) -> str:
        if self.database_url:
            return self.database_url
        if "database_url" in self._embedded:
            return self._embedded["database_url"]
        raise ServicesNotRunning(
            f"no Postgres for center {self.center!r}: run `bcl up` to start the embedded one, "
            "or set BCL_DATABASE_URL to a running server"
        )


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
