"""The electronic seal (電子契印) of issued certificates: ECDSA P-256 with SHA-256.

A municipality's seal keys are kept by BCL, which issues on its behalf: the private key under
``$BCL_HOME/seals/<municipality>/<key id>.key.pem`` (mode 0600), the public key in the municipality
registry, where verifiers find it. The signature is DER-encoded over the SHA-256 of the content's
canonical bytes, exactly what ``openssl dgst -sha256 -sign/-verify`` makes and checks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pipeline.settings import Settings
from pipeline.signing import SigningKeyError, key_kind, write_key_pair

CURVE = ec.SECP256R1()


def generate_seal_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(CURVE)


def seal_key_id(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str:
    """First 16 hex digits of the SHA-256 of the SubjectPublicKeyInfo, like a key identifier."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:16]


def seals_home(settings: Settings, municipality: str) -> Path:
    return settings.home / "seals" / municipality


def write_seal_key(settings: Settings, municipality: str, key: ec.EllipticCurvePrivateKey) -> Path:
    """Store the private key (and its public half beside it); returns the private key's path."""
    private_path, _ = write_key_pair(seals_home(settings, municipality), seal_key_id(key), key)
    return private_path


def keep_seal_key(
    settings: Settings, municipality: str, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, bool]:
    """Store ``key`` as `write_seal_key` does unless BCL already holds it; returns the private
    key's path and whether it was written now."""
    key_id = seal_key_id(key)
    path = seals_home(settings, municipality) / f"{key_id}.key.pem"
    if not path.exists():
        return write_seal_key(settings, municipality, key), True
    if load_seal_key(settings, municipality, key_id).private_numbers() != key.private_numbers():
        raise SigningKeyError(
            f"{path} holds another key than its name says; move it away and import again"
        )
    return path, False


def load_seal_key(settings: Settings, municipality: str, key_id: str) -> ec.EllipticCurvePrivateKey:
    """The private seal key ``key_id`` of ``municipality``; FileNotFoundError if BCL lacks it."""
    path = seals_home(settings, municipality) / f"{key_id}.key.pem"
    try:
        return read_seal_private_key(path.read_bytes())
    except SigningKeyError as error:
        raise SigningKeyError(f"seal key {key_id} of {municipality} ({path}): {error}") from None


def read_seal_private_key(pem: bytes, password: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """An ECDSA P-256 private key from PEM, PKCS#8 or traditional EC (``BEGIN EC PRIVATE KEY``),
    decrypted with ``password`` if it is encrypted; SigningKeyError says what else it is."""
    if b"-----BEGIN PUBLIC KEY-----" in pem:
        raise SigningKeyError("a public key, not a private key; a seal key is its private half")
    if b"-----BEGIN CERTIFICATE-----" in pem:
        raise SigningKeyError("a certificate, not a private key")
    if b"PRIVATE KEY-----" not in pem:
        raise SigningKeyError(
            "not a PEM private key (expected '-----BEGIN PRIVATE KEY-----' or "
            "'-----BEGIN EC PRIVATE KEY-----')"
        )
    try:
        key = serialization.load_pem_private_key(pem, password=password)
    except TypeError as exc:
        # cryptography signals a missing or needless password with TypeError.
        if password is None:
            raise SigningKeyError(
                "an encrypted private key; give its password with --password-file"
            ) from exc
        raise SigningKeyError("not encrypted; leave out --password-file") from exc
    except UnsupportedAlgorithm as exc:
        raise SigningKeyError(f"a private key of an unsupported type ({exc})") from exc
    except ValueError as exc:
        if password is None:
            raise SigningKeyError(f"not a PEM private key that can be read ({exc})") from exc
        raise SigningKeyError(f"cannot be decrypted with the password given ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != CURVE.name:
        raise SigningKeyError(f"{key_kind(key)}; seals are ECDSA P-256 (prime256v1) keys")
    return key


def load_seal_public_key(pem: str | bytes) -> ec.EllipticCurvePublicKey:
    data = pem.encode("ascii", errors="replace") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise SigningKeyError(f"not a PEM public key that can be read ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != CURVE.name:
        raise SigningKeyError("a seal key must be an ECDSA P-256 public key")
    return key


def public_seal_pem(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> str:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def seal(key: ec.EllipticCurvePrivateKey, content: bytes) -> bytes:
    """The DER signature of ``content`` (hashed with SHA-256)."""
    return key.sign(content, ec.ECDSA(hashes.SHA256()))


def seal_holds(public_key: ec.EllipticCurvePublicKey, content: bytes, signature: bytes) -> bool:
    """Whether ``signature`` seals ``content``; a malformed signature is an answer, not an error."""
    try:
        public_key.verify(signature, content, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
