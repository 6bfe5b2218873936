"""Proof of origin: what an edge proves, a consumer accepts, and every way a forgery fails."""

import os
from uuid import UUID

import orjson
import pytest

from pipeline.proofs import EdgeKeys, Unauthenticated
from pipeline.publish import proven
from producers.workload import platform_sample
from schemas.codec import decode_event, encode_event, encode_unproven, proof_suffix
from schemas.envelope import Envelope
from schemas.rights import edge_of

KEYS = EdgeKeys(os.urandom(32))


def proven_sample(count: int = 200) -> list[Envelope]:
    return [KEYS.prove(edge_of(m.envelope), m.envelope) for m in platform_sample(count, seed=5)]


def refusal(raw: bytes, keys: EdgeKeys = KEYS) -> str:
    with pytest.raises(Unauthenticated) as refused:
        keys.check(raw, decode_event(raw).envelope)
    return str(refused.value)


def test_proven_events_are_accepted_and_survive_a_decode_and_encode() -> None:
    for envelope in proven_sample():
        raw = encode_event(envelope)
        decoded = decode_event(raw).envelope
        KEYS.check(raw, decoded)
        # The outbox stores decisions decoded and encodes them again: the bytes must not move.
        assert encode_event(decoded) == raw


def test_the_bytes_an_edge_hands_over_with_what_it_proved_are_the_events_own() -> None:
    # A publisher sends an Outgoing's value as it is: it must be the proven envelope's encoding.
    for message in platform_sample(200, seed=6):
        edge = edge_of(message.envelope)
        outgoing = proven(KEYS, edge, message.topic, message.key, message.envelope)
        assert outgoing.value == encode_event(outgoing.envelope)
        assert outgoing.envelope == KEYS.prove(edge, message.envelope)
        KEYS.check(outgoing.value, decode_event(outgoing.value).envelope)


def test_the_proof_is_the_last_field_over_the_bytes_before_it() -> None:
    envelope = proven_sample(1)[0]
    assert envelope.proof is not None
    raw = encode_event(envelope)
    assert raw.endswith(proof_suffix(envelope.proof))
    assert raw[: -len(proof_suffix(envelope.proof))] + b"}" == encode_unproven(
        envelope.model_copy(update={"proof": None})
    )


def test_an_event_without_proof_is_refused() -> None:
    envelope = proven_sample(1)[0].model_copy(update={"proof": None})
    assert refusal(encode_event(envelope)).startswith("the event carries no proof of origin")


@pytest.mark.parametrize(
    "change",
    [
        {"source": "center:west", "origin": "west"},
        {"municipality": "131024"},
        {"sequence": 9},
        {"event_id": UUID("01a25000-0000-7000-8000-000000000000")},
    ],
    ids=["source", "municipality", "sequence", "event_id"],
)
def test_any_field_changed_after_proving_breaks_the_proof(change: dict[str, object]) -> None:
    envelope = next(e for e in proven_sample() if e.type == "issuance.requested")
    altered = envelope.model_copy(update=change)
    assert refusal(encode_event(altered)).startswith("the proof does not match the event")


def test_a_payload_altered_by_one_byte_is_refused() -> None:
    raw = encode_event(next(e for e in proven_sample() if e.type == "issuance.requested"))
    altered = raw.replace(b'"copies":1', b'"copies":2')
    assert altered != raw
    assert refusal(altered).startswith("the proof does not match the event")


def test_a_proof_copied_from_another_event_is_refused() -> None:
    first, second = [e for e in proven_sample() if e.type == "issuance.requested"][:2]
    pasted = second.model_copy(update={"proof": first.proof})
    assert refusal(encode_event(pasted)).startswith("the proof does not match the event")


def test_a_proof_made_with_another_key_encryption_key_is_refused() -> None:
    stranger = EdgeKeys(os.urandom(32))
    envelope = proven_sample(1)[0]
    forged = stranger.prove(edge_of(envelope), envelope.model_copy(update={"proof": None}))
    assert refusal(encode_event(forged)).startswith("the proof does not match the event")


def test_an_edge_proving_what_it_has_no_right_to_is_refused() -> None:
    envelope = next(e for e in proven_sample() if e.type == "certificate.revoked")
    with pytest.raises(ValueError, match="edge center:east has no right"):
        KEYS.prove("center:east", envelope)
    # The same forgery made by hand with the center's real key: the consumer refuses it too.
    raw = encode_event(envelope.model_copy(update={"proof": KEYS.proof("center:east", envelope)}))
    assert refusal(raw) == "edge center:east has no right to publish certificate.revoked"


def test_a_re_encoded_event_is_refused_even_if_equal_in_meaning() -> None:
    raw = encode_event(proven_sample(1)[0])
    spaced = orjson.dumps(orjson.loads(raw), option=orjson.OPT_INDENT_2)
    assert refusal(spaced).startswith("the proof is not the last field of the event")


def test_a_proof_naming_no_edge_is_refused() -> None:
    envelope = proven_sample(1)[0]
    bogus = envelope.model_copy(update={"proof": "nobody#1:" + "A" * 43})
    assert refusal(encode_event(bogus)) == (
        "proof names 'nobody' is not an edge of this platform (edges are of kinds: center, "
        "disaster, issuer, jpki, municipality, registry, retention)"
    )


def test_each_edge_has_its_own_key_and_keeps_it() -> None:
    edges = ["jpki", "registry", "center:east", "center:west", "municipality:131016"]
    keys = {edge: KEYS.key(edge) for edge in edges}
    assert len(set(keys.values())) == len(edges)
    assert EdgeKeys(KEYS.kek).key("jpki") == keys["jpki"]
    assert KEYS.key("jpki", 2) != keys["jpki"]


@pytest.mark.parametrize("generation", ["0", "01", "2", "99999999"])
def test_a_proof_of_a_key_generation_not_in_use_is_refused_before_any_key_is_made(
    generation: str,
) -> None:
    keys = EdgeKeys(KEYS.kek)
    envelope = proven_sample(1)[0]
    assert envelope.proof is not None
    edge, mac = envelope.proof.split("#")[0], envelope.proof.split(":")[-1]
    other = envelope.model_copy(update={"proof": f"{edge}#{generation}:{mac}"})
    assert refusal(encode_event(other), keys).startswith(
        f"proof names key generation '{generation}'"
    )
    assert keys._keys == {}
