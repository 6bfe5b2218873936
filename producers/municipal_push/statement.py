"""The push statement a municipality signs, and its signature (see the package's docstring)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pipeline.signing import sign_digest

STATEMENT_TAG = "bcl-push-v1"
SIGNATURE_SIZE = 64  # Ed25519


def push_statement(municipality: str, sequence: int, file_sha256: str) -> bytes:
    """The text a municipality signs (its SHA-256 digest) to push ``sequence``."""
    return f"{STATEMENT_TAG}\n{municipality}\n{sequence}\n{file_sha256}\n".encode()


def statement_digest(municipality: str, sequence: int, file_sha256: str) -> bytes:
    return hashlib.sha256(push_statement(municipality, sequence, file_sha256)).digest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def sign_push(
    private_key: Ed25519PrivateKey, municipality: str, sequence: int, path: Path
) -> bytes:
    """The municipality's signature of pushing ``path`` as batch ``sequence``."""
    return sign_digest(private_key, statement_digest(municipality, sequence, file_sha256(path)))
