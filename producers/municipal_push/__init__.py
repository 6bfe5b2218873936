"""Municipal push intake: a municipality's signed resident-data file becomes resident events.

The push protocol
-----------------
A push is (municipality, batch sequence, file). Sequences count 1, 2, 3, ... per municipality.
The municipality signs the SHA-256 digest of the **push statement**, the UTF-8 text::

    bcl-push-v1\\n{municipality}\\n{sequence}\\n{sha256 hex of the file bytes}\\n

with its Ed25519 key, whose public half is in the registry (``bcl municipality show``). Signing
the statement rather than the file binds the signature to the sequence and the municipality, so
a signed file cannot be replayed under another sequence or by another municipality. With
openssl alone::

    printf 'bcl-push-v1\\n131016\\n1\\n%s\\n' "$(sha256sum diff.csv | cut -d' ' -f1)" > statement
    openssl dgst -sha256 -binary statement > digest
    openssl pkeyutl -sign -rawin -inkey key.pem -in digest -out sig
    bcl push 131016 diff.csv --sequence 1 --signature sig

What the intake answers, as ``PushReport.outcome``:

- ``accepted``: every row was valid; its events and a ``resident.batch_accepted`` receipt are on
  ``resident.changes``. Held batches it unblocks are published after it (``released``).
- ``already_accepted``: this sequence was accepted with this very file; nothing is published.
- ``held``: valid, but an earlier sequence is missing; published once the gap fills
  (``held_batches`` lists what waits).
- ``refused``: nothing is published and the sequence stays free; ``reason`` is a stable code
  (``REFUSAL_REASONS``) and ``problems`` lists every invalid row (line, field, value, reason).

Validation is all-or-nothing and streams: the file may be a gigabyte, and memory stays bounded
(rows go to disk, and a report keeps at most ``MAX_PROBLEMS`` problems). Every push that is read
at all (a valid municipality code, a file within ``push_max_bytes``), refused ones included,
keeps its ``report.json`` (the file's digest, the outcome and the problems, without the values of
personal fields) in ``$BCL_HOME/<center>/pushes/<municipality>/<sequence>-<sha256[:12]>/``. The
file itself is not kept. Its canonical rows (``rows.jsonl``, and a snapshot's ``changes.jsonl``)
wait there, each line sealed (``pipeline.sealed_files``), until the batch is published.

The ledger ``intake.batches`` records each accepted, held or publishing batch; a refusal takes no
sequence. Pushes of one municipality are decided one at a time (a Postgres advisory lock).

Each row's event id is derived from the batch, the line and the time the batch was first
received, so a batch interrupted mid-publish (status ``publishing`` in ``intake.batches``) and
pushed again republishes the same events, which readers see once. Envelope sequences are
``batch * 10,000,000 + line``: monotonic per municipality.

A full snapshot (``full=True``) is compared with the replica: only new or different rows are
published, and every resident active in the replica but absent from the snapshot is removed
(``ex_officio_removal`` as of ``as_of``).

Samples for 千代田区 (131016) are in ``producers/samples/`` (the ``.jsonl`` holds the same rows as
the ``.csv``). After ``bcl up`` and ``bcl municipality add 131016 --name 千代田区`` (which keeps
the signing key in ``$BCL_HOME/keys/131016.key.pem``), push one with
``bcl push 131016 producers/samples/residents-131016-001.csv``.
"""

from producers.municipal_push.batch import (
    LINES_PER_BATCH,
    REFUSAL_REASONS,
    FileFormat,
    HeldBatch,
    PushInterrupted,
    PushReport,
)
from producers.municipal_push.intake import held_batches, next_sequence, push_file
from producers.municipal_push.kept import WITHHELD
from producers.municipal_push.statement import (
    file_sha256,
    push_statement,
    sign_push,
    statement_digest,
)

__all__ = [
    "LINES_PER_BATCH",
    "REFUSAL_REASONS",
    "WITHHELD",
    "FileFormat",
    "HeldBatch",
    "PushInterrupted",
    "PushReport",
    "file_sha256",
    "held_batches",
    "next_sequence",
    "push_file",
    "push_statement",
    "sign_push",
    "statement_digest",
]
