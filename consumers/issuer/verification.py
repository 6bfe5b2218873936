"""Verifying a certificate PDF: is it what the municipality sealed, and is that seal trusted?

A certificate PDF carries the signed content (``certificate.json``, canonical JSON) and the
municipality's electronic seal over it (``certificate.sig``, a DER ECDSA P-256 signature) as
embedded files, and its pages are a deterministic drawing of that content. ``verify_document``
checks all of it; the seal alone can be checked by anyone with openssl, without BCL's code:

1. Extract the two files, byte for byte. ``bcl verify FILE.pdf --extract DIR`` writes them (it
   calls ``extract_signed``); with pypdf alone::

       python -c "import sys, pypdf; [open(n, 'wb').write(d[0]) for n, d in
       pypdf.PdfReader(sys.argv[1]).attachments.items()]" FILE.pdf

   or ``pikepdf``: ``pdf.attachments["certificate.json"].get_file().read_bytes()``.
2. Save the municipality's public seal key whose id ``certificate.json`` names (``seal_key_id``;
   the registry's ``SealKey.public_key``, a PEM SubjectPublicKeyInfo) as ``seal.pub.pem``.
3. ``openssl dgst -sha256 -verify seal.pub.pem -signature certificate.sig certificate.json``
   prints ``Verified OK`` when the content is exactly what the municipality sealed.

openssl says nothing about the printed pages nor about a key revoked since; for those, see the
steps of ``verify_document``.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pypdf import PdfReader
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    IndirectObject,
    NullObject,
    PdfObject,
    StreamObject,
)

from consumers.issuer.document import (
    ATTACHED_CONTENT,
    ATTACHED_SIGNATURE,
    certificate_title,
    render_document,
)
from pipeline.seals import load_seal_public_key, seal_holds
from pipeline.signing import SigningKeyError
from schemas.calendar import JST
from schemas.documents import parse_content
from schemas.events.issuance import CertificateType
from schemas.events.municipalities import SealKey

KeyLookup = Callable[[str, str], SealKey | None]
"""(municipality code, seal key id) → the registry's key, or None if it lists no such key."""


class Verdict(StrEnum):
    VALID = "valid"
    TAMPERED = "tampered"
    UNKNOWN_KEY = "unknown_key"
    REVOKED_KEY = "revoked_key"
    NOT_A_CERTIFICATE = "not_a_certificate"


@dataclass(frozen=True)
class Verification:
    """The verdict, a sentence saying what was found, and what the file says when it was read."""

    verdict: Verdict
    message: str
    document_id: UUID | None = None
    verification_id: str | None = None
    municipality: str | None = None
    certificate_type: CertificateType | None = None
    seal_key_id: str | None = None
    digest: str | None = None  # SHA-256 of the embedded content (hex)
    issued_at: datetime | None = None


class NotACertificate(ValueError):
    """The file is not a PDF, or not one that carries a sealed certificate content."""


def extract_signed(pdf: bytes) -> tuple[bytes, bytes]:
    """The embedded content and signature bytes of a certificate PDF, exactly as sealed."""
    names = (ATTACHED_CONTENT, ATTACHED_SIGNATURE)
    try:
        attachments = PdfReader(io.BytesIO(pdf)).attachments
        copies = [attachments.get(name, []) for name in names]
    except Exception as exc:  # pypdf reports a malformed file with many exception types
        raise NotACertificate(f"the file cannot be read as a PDF ({exc})") from exc
    for name, found in zip(names, copies, strict=True):
        if not found:
            raise NotACertificate(
                f"the PDF carries no {name}: it is not a certificate issued through BCL, or its "
                "embedded files were removed"
            )
        if len(found) > 1:
            raise NotACertificate(
                f"the PDF carries {len(found)} files named {name} where a certificate has one"
            )
    return copies[0][0], copies[1][0]


def verify_document(pdf: bytes, find_key: KeyLookup, *, at: datetime) -> Verification:
    """Whether ``pdf`` is a certificate as its municipality sealed it, trusted at ``at`` (aware).

    Never raises for a bad file: what is wrong with it is the verdict.

    1. Read the PDF and its two embedded files    → NOT_A_CERTIFICATE
    2. Parse the content (it was signed as valid canonical JSON, so unparseable
       content was altered)                        → TAMPERED
    3. Find the seal key the content names         → UNKNOWN_KEY, or TAMPERED when the pages
       do not show that content: the municipality or key id was altered, not unknown
    4. Check the seal over the content bytes       → TAMPERED
    5. Key revoked at ``at``                       → REVOKED_KEY
    6. Redraw the document from the content and the signature and compare the file's pages
       with it, page by page                       → TAMPERED
    7. VALID
    """
    # 1. The PDF and its embedded content and signature.
    try:
        content, signature = extract_signed(pdf)
    except NotACertificate as exc:
        return Verification(Verdict.NOT_A_CERTIFICATE, f"not a certificate: {exc}.")
    digest = hashlib.sha256(content).hexdigest()

    # 2. The content.
    try:
        certificate = parse_content(content)
    except ValueError as exc:
        problem = str(exc).splitlines()[0]
        return Verification(
            Verdict.TAMPERED,
            f"tampered: the embedded {ATTACHED_CONTENT} is not a certificate's content "
            f"({problem}); it was sealed as valid canonical JSON, so the file was altered after "
            "issuance. Do not accept it; the resident can have the certificate issued again.",
            digest=digest,
        )

    def verdict(verdict: Verdict, message: str) -> Verification:
        return Verification(
            verdict,
            message,
            document_id=certificate.document_id,
            verification_id=certificate.verification_id,
            municipality=certificate.municipality,
            certificate_type=certificate.certificate_type,
            seal_key_id=certificate.seal_key_id,
            digest=digest,
            issued_at=certificate.issued_at,
        )

    # 3. The key that sealed it.
    key_id, municipality = certificate.seal_key_id, certificate.municipality
    key = find_key(municipality, key_id)
    if key is None:
        # Both are printed, so a redraw tells an altered municipality or key id from a key that
        # the registry really does not list.
        difference = _printed_difference(pdf, content, signature)
        if difference is not None:
            return verdict(
                Verdict.TAMPERED,
                f"tampered: {difference}, and the registry lists no seal key {key_id} for "
                f"municipality {municipality}: the embedded content was altered after issuance; "
                "do not accept it.",
            )
        return verdict(
            Verdict.UNKNOWN_KEY,
            f"unknown key: the registry lists no seal key {key_id} for municipality "
            f"{municipality}, so nothing shows that {certificate.municipality_name} sealed this "
            "document. It may be forged; check with the municipality before accepting it.",
        )
    try:
        public_key = load_seal_public_key(key.public_key)
    except SigningKeyError as exc:
        return verdict(
            Verdict.UNKNOWN_KEY,
            f"unknown key: the registry lists seal key {key_id} of {municipality} but its public "
            f"key is unusable ({exc}); the registry entry must be corrected before this document "
            "can be verified.",
        )

    # 4. The seal over the content bytes.
    if not seal_holds(public_key, content, signature):
        return verdict(
            Verdict.TAMPERED,
            f"tampered: the seal does not hold: {ATTACHED_CONTENT} is not what key {key_id} of "
            f"{municipality} signed, or {ATTACHED_SIGNATURE} was replaced. The file was altered "
            "after issuance; do not accept it.",
        )

    # 5. The key still trusted at that instant.
    if key.revoked_at is not None and key.revoked_at <= at:
        return verdict(
            Verdict.REVOKED_KEY,
            f"revoked key: the seal holds, but key {key_id} of {municipality} has been revoked "
            f"since {key.revoked_at.astimezone(JST):%Y-%m-%d %H:%M:%S} (Japan time), and nothing "
            "it sealed is trusted any more. The resident can have the certificate issued again.",
        )

    # 6. The printed pages against a redraw of the sealed content.
    difference = _printed_difference(pdf, content, signature)
    if difference is not None:
        return verdict(
            Verdict.TAMPERED,
            f"tampered: {difference}. The seal holds, so the pages were altered after issuance: "
            "what they show is not what the municipality certified; do not accept it.",
        )

    # 7. Valid.
    issued_on = certificate.issued_at.astimezone(JST)
    return verdict(
        Verdict.VALID,
        f"valid: {certificate_title(certificate)} {certificate.document_id} issued by "
        f"{certificate.municipality_name} ({municipality}) at {issued_on:%Y-%m-%d %H:%M} "
        f"(Japan time), sealed with key {key_id}; the printed pages are exactly what was sealed.",
    )


def _printed_difference(pdf: bytes, content: bytes, signature: bytes) -> str | None:
    """What differs between the file's pages and a redraw of the content, if anything.

    Whole pages are compared, not only their content streams: the fonts drawn with, the page
    boxes and rotation, and any annotation laid over a page change what is printed too.
    """
    try:
        expected = PdfReader(io.BytesIO(render_document(content, signature))).pages
    except ValueError as exc:
        return f"the embedded content cannot be drawn as a certificate ({exc})"
    try:
        pages = PdfReader(io.BytesIO(pdf)).pages
        if len(pages) != len(expected):
            return (
                f"the printed pages differ from the sealed content: the file has {len(pages)} "
                f"pages where the content draws {len(expected)}"
            )
        found_digests, drawn_digests = _Appearance(), _Appearance()
        for number, (page, drawn) in enumerate(zip(pages, expected, strict=True), start=1):
            if found_digests.of(page) != drawn_digests.of(drawn):
                side = "front" if number % 2 else "back (anti-forgery data)"
                return (
                    f"the printed {side} differs from the sealed content (page {number}, sheet "
                    f"{(number + 1) // 2})"
                )
    except Exception as exc:  # pypdf reports a malformed page with many exception types
        return f"the file's pages cannot be read ({exc})"
    return None


class _Appearance:
    """Digests of PDF objects by what they are, not how they are stored.

    Streams count by their decoded data, so recompressing a file changes nothing; /Parent links
    are left out, as they lead from a page to the whole document.
    """

    _LAYOUT = frozenset({"/Parent", "/Length", "/Filter", "/DecodeParms"})

    def __init__(self) -> None:
        self._done: dict[tuple[int, int], bytes] = {}
        self._open: set[tuple[int, int]] = set()

    def of(self, obj: PdfObject) -> bytes:
        if isinstance(obj, IndirectObject):
            ref = (obj.idnum, obj.generation)
            if ref in self._done:
                return self._done[ref]
            if ref in self._open:  # a cycle: its digest is on its way up
                return hashlib.sha256(b"cycle").digest()
            self._open.add(ref)
            target = obj.get_object()
            # A reference to a missing object means null (ISO 32000-1, 7.3.10).
            digest = self.of(NullObject() if target is None else target)
            self._open.discard(ref)
            self._done[ref] = digest
            return digest
        if isinstance(obj, DictionaryObject):
            # pypdf reads a stream as "encoded" or "decoded" by whether it has a filter: the kind
            # is tagged by hand so that a decompressed copy digests like the original.
            h = hashlib.sha256(b"stream" if isinstance(obj, StreamObject) else b"dictionary")
            for key in sorted(obj):
                if key not in self._LAYOUT:
                    h.update(key.encode() + self.of(obj.raw_get(key)))
            if isinstance(obj, StreamObject):
                h.update(hashlib.sha256(obj.get_data()).digest())
        elif isinstance(obj, ArrayObject):
            h = hashlib.sha256(b"array")
            for item in obj:
                h.update(self.of(item))
        else:
            h = hashlib.sha256(f"{type(obj).__name__} {obj!r}".encode())
        return h.digest()
