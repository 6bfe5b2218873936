"""What proof of origin costs per event (issue 23), and what the signature it was chosen over
would have cost, on the same events: the platform sample, encoded as the log holds them."""

from __future__ import annotations

import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.proofs import EdgeKeys
from pipeline.settings import Settings
from producers.workload import platform_sample
from schemas.codec import decode_event, encode_event, encode_unproven
from schemas.rights import edge_of


def _per_event(count: int, run: Callable[[], None]) -> float:
    """Microseconds per event of ``run`` (which handles ``count`` events), best of three."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best / count * 1e6


def bench_proofs(settings: Settings, count: int) -> list[tuple[str, float, str]]:
    keys = EdgeKeys.of(settings)
    envelopes = [m.envelope for m in platform_sample(count, seed=2)]
    edges = [edge_of(envelope) for envelope in envelopes]
    proven = [keys.prove(edge, envelope) for edge, envelope in zip(edges, envelopes, strict=True)]
    raw = [encode_event(envelope) for envelope in proven]
    decoded = [decode_event(value).envelope for value in raw]
    unproven = [encode_unproven(envelope) for envelope in envelopes]
    signer = Ed25519PrivateKey.generate()
    signatures = [signer.sign(body) for body in unproven]
    public = signer.public_key()

    def prove() -> None:
        for edge, envelope in zip(edges, envelopes, strict=True):
            keys.prove(edge, envelope)

    def check() -> None:
        for value, envelope in zip(raw, decoded, strict=True):
            keys.check(value, envelope)

    def decode() -> None:
        for value in raw:
            decode_event(value)

    def sign() -> None:
        for body in unproven:
            signer.sign(body)

    def verify() -> None:
        for body, signature in zip(unproven, signatures, strict=True):
            public.verify(signature, body)

    decode_us = _per_event(count, decode)
    check_us = _per_event(count, check)
    return [
        ("proof on publish (HMAC-SHA256, rights checked)", _per_event(count, prove), "µs/event"),
        ("proof check on consume (HMAC-SHA256, rights)", check_us, "µs/event"),
        ("decode an event (for scale)", decode_us, "µs/event"),
        ("decode + proof check, one core", 1e6 / (decode_us + check_us), "events/s"),
        ("Ed25519 sign, the alternative", _per_event(count, sign), "µs/event"),
        ("Ed25519 verify, the alternative", _per_event(count, verify), "µs/event"),
    ]
