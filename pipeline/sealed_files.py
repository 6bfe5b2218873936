"""Files of lines kept sealed at rest (DESIGN §7: nothing personal in clear on disk).

A pushed register waits on disk between its check and its publication (a held batch, a snapshot's
changes, a push interrupted mid-publish). Each line is sealed alone with AES-256-GCM, so the file
streams in both directions with bounded memory, under a key derived from the vault's KEK for that
one file: deleting the file, or the KEK, destroys it.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_NONCE_SIZE = 12


class SealedFileError(ValueError):
    """A sealed file that does not open: altered, truncated mid-line, or under another key."""


class SealedLines:
    """Lines sealed under the key of one file, named by ``context`` (say, a push's folder)."""

    def __init__(self, kek: bytes, context: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=f"bcl file:{context}".encode()
        ).derive(kek)
        self._cipher = AESGCM(key)
        self._context = context.encode()

    def writer(self, out: IO[bytes]) -> LineSealer:
        return LineSealer(out, self._cipher, self._context)

    def lines(self, path: Path) -> Iterator[bytes]:
        """The lines of ``path`` in clear, each with its line break."""
        with path.open("rb") as sealed:
            for number, line in enumerate(sealed, start=1):
                try:
                    raw = binascii.a2b_base64(line)
                    where = _position(self._context, number)
                    yield self._cipher.decrypt(raw[:_NONCE_SIZE], raw[_NONCE_SIZE:], where)
                except (binascii.Error, InvalidTag, ValueError):
                    raise SealedFileError(
                        f"{path}, line {number}: does not open (altered, moved, or sealed "
                        "under another key); push the file again"
                    ) from None


class LineSealer:
    """Writes each line given, sealed, to ``out``; ``write`` takes whole lines only."""

    def __init__(self, out: IO[bytes], cipher: AESGCM, context: bytes) -> None:
        self._out = out
        self._cipher = cipher
        self._context = context
        self._written = 0

    def write(self, line: bytes) -> None:
        self._written += 1
        nonce = os.urandom(_NONCE_SIZE)
        where = _position(self._context, self._written)
        sealed = nonce + self._cipher.encrypt(nonce, line, where)
        self._out.write(binascii.b2a_base64(sealed))

    def writelines(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            self.write(line)


def _position(context: bytes, number: int) -> bytes:
    """A line's associated data: its file and its place there, so lines cannot be reordered,
    repeated or moved to another file unnoticed."""
    return b"%b#%d" % (context, number)
