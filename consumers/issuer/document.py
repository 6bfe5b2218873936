"""The certificate PDF: the front drawn from the sealed content, the back with the seal's QR code.

Pages come in pairs for duplex printing on the kiosk's plain paper (DOMAIN §2): front 1, back 1,
front 2, back 2, ... The front is drawn from the signed ``CertificateContent`` alone and the
drawing is deterministic (same content and signature, same bytes), so a verifier can redraw it
and compare. The back carries the anti-forgery data: a QR code holding the document id, the
content's digest and the municipality's electronic seal (電子契印), and the verification id.

The signed bytes travel inside the PDF as two uncompressed embedded files, ``certificate.json``
(the canonical content) and ``certificate.sig`` (the DER ECDSA signature), so anyone can check
them with ``openssl dgst -sha256 -verify`` and a changed byte in the file is a changed byte of
the content.

Rendering runs in a process pool: ``render_document`` is a top-level function of plain bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.util
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache, partial
from pathlib import Path
from typing import Final
from uuid import UUID

import numpy as np
import numpy.typing as npt
import zxingcpp

from consumers.issuer.pdf import Document, Page, Template, Typeface
from schemas.calendar import JST
from schemas.documents import (
    CertificateContent,
    DisasterCertificate,
    ResidentEntry,
    ResidentRecordCopy,
    SealCertificate,
    TaxCertificate,
    parse_content,
)
from schemas.events.disaster import DAMAGE_LABELS, DISASTER_KIND_LABELS
from schemas.events.issuance import CertificateType

ATTACHED_CONTENT: Final = "certificate.json"
ATTACHED_SIGNATURE: Final = "certificate.sig"
QR_PREFIX: Final = "BCL1"
MEMBERS_PER_PAGE: Final = 4


FONT: Final = "IPAexGothic"
MONO: Final = "Courier"  # one of the 14 standard fonts: nothing to embed for the command line
mm: Final = 72 / 25.4
PAGE_WIDTH, PAGE_HEIGHT = 210 * mm, 297 * mm  # A4
MARGIN: Final = 20 * mm
CONTENT_WIDTH: Final = PAGE_WIDTH - 2 * MARGIN
SEAL_RED: Final = (0.8, 0.1, 0.1)
_TOP: Final = PAGE_HEIGHT - 38 * mm  # first line of boxes, under the title
_MEMBER_GAP: Final = 8.0
_CERTIFY_TOP: Final = 232.0  # baseline of the certifying sentence, clear of four members
_QR_SIZE: Final = 72 * mm

# Title and body kind of each type that has a front to draw.
_TYPES: Final[dict[CertificateType, tuple[str, str]]] = {
    CertificateType.JUMINHYO: ("住民票の写し", "juminhyo"),
    CertificateType.INKAN: ("印鑑登録証明書", "inkan"),
    CertificateType.TAX_INCOME: ("所得証明書", "tax"),
    CertificateType.TAX_ASSESSMENT: ("課税(非課税)証明書", "tax"),
    CertificateType.TAX_PAYMENT: ("納税証明書", "tax"),
    CertificateType.RISAI: ("罹災証明書", "disaster"),
    CertificateType.HISAI: ("被災証明書", "disaster"),
}
# What each disaster certificate certifies.
_DISASTER_SENTENCES: Final = {
    CertificateType.RISAI: "上記のとおり、り災したことを証明する。",
    CertificateType.HISAI: "上記のとおり、被災したことを証明する。",
}
_SEX: Final = {"male": "男", "female": "女"}
_CERTIFY_HOUSEHOLD: Final = "この写しは、世帯全員の住民票の原本と相違ないことを証明する。"
_CERTIFY_RESIDENT: Final = "この写しは、住民票の原本と相違ないことを証明する。"
_CERTIFY_SEAL: Final = "この写しは、登録されている印影と相違ないことを証明する。"
_CERTIFY_TAX: Final = "上記のとおり相違ないことを証明する。"
_SEAL_NOTE: Final = (
    "この証明書には{name}の電子契印（電子署名）が付されています。"
    "真正性は裏面の偽造防止情報（二次元コード・検証ID）で確かめられます。"
)
_BACK_PARAGRAPHS: Final = (
    "この面は、表面の証明書が{name}により発行され、発行後に書き換えられていないことを"
    "確かめるための情報です。",
    "二次元コードには、文書ID、証明内容のSHA-256ダイジェスト、{name}の電子契印"
    "（ECDSA P-256による電子署名）とその鍵IDが記録されています。電子契印は"
    "{name}の公開鍵で検証できます。",
    f"PDFファイルには証明内容（{ATTACHED_CONTENT}）と電子契印（{ATTACHED_SIGNATURE}）が"
    "添付されています。{name}の公開鍵（鍵ID {key_id}）を seal.pub.pem として"
    "保存し、次のコマンドを実行して「Verified OK」と表示されれば、証明内容は発行時のままです。",
)
_OPENSSL_COMMAND: Final = (
    f"openssl dgst -sha256 -verify seal.pub.pem -signature {ATTACHED_SIGNATURE} {ATTACHED_CONTENT}"
)
_PAPER_CHECK: Final = (
    "紙の証明書は、検証IDを検証サービスに入力すると、発行された内容と照合できます。"
)
# The labels of the forms' boxes and the words around the values.
_FORM_LABELS: Final = (
    "住所 世帯主 氏名 生年月日 性別 続柄 住民となった年月日 住所を定めた年月日 届出年月日 "
    "前住所 から転入 登録番号 年度 中の所得 所得金額 課税額 納付額 非課税 円 災害名 災害発生日 "
    "災害の種類 被災者氏名 被災住家の所在地 住家の被害の程度 印 偽造防止情報 検証ID: "
    "電子契印の鍵ID 団体コード 文書ID: 頁 /"
)

# First days of the eras, newest first; 明治 is reckoned from 明治元年1月1日 (Gregorian).
_ERAS: Final = (
    (date(2019, 5, 1), "令和"),
    (date(1989, 1, 8), "平成"),
    (date(1926, 12, 25), "昭和"),
    (date(1912, 7, 30), "大正"),
    (date(1868, 1, 25), "明治"),
)

# Japanese line breaking (禁則): these never start a line.
_NO_LINE_START: Final = frozenset("、。，．）」』】〕・ー")
# A run of printable ASCII (a file name, a command word) is not broken across lines.
_TOKENS: Final = re.compile(r"[!-~]+|.", re.DOTALL)

# What every document's template subset holds (see consumers/issuer/pdf.py): the forms' fixed
# wording, and the characters of dates, amounts and ids. Any other character drawn (names, their
# furigana, addresses) goes into the document's own subset: every glyph of the template is in
# every stored PDF.
_FORM_WORDING: Final = "".join(
    (
        *(title for title, _ in _TYPES.values()),
        *_DISASTER_SENTENCES.values(),
        *_SEX.values(),
        *(era for _, era in _ERAS),
        *DAMAGE_LABELS.values(),
        *DISASTER_KIND_LABELS.values(),
        _CERTIFY_HOUSEHOLD, _CERTIFY_RESIDENT, _CERTIFY_SEAL, _CERTIFY_TAX,
        _SEAL_NOTE, *_BACK_PARAGRAPHS, _PAPER_CHECK, _FORM_LABELS,
        "元年月日度（）、。・：　",
        *map(chr, range(0x20, 0x7F)),  # printable ASCII
    )
)  # fmt: skip


# ------------------------------------------------------------------------------ public helpers


@dataclass(frozen=True)
class QrSeal:
    """What the QR code on the back holds."""

    document_id: UUID
    digest: str
    signature: bytes
    seal_key_id: str


def qr_payload(content: CertificateContent, digest: str, signature: bytes) -> str:
    """``BCL1:<document id hex>:<sha256 hex>:<signature base64url, unpadded>:<seal key id>``."""
    return ":".join(
        (QR_PREFIX, content.document_id.hex, digest, _base64url(signature), content.seal_key_id)
    )


def parse_qr_payload(text: str) -> QrSeal:
    """The seal read from a QR code's text; ValueError saying what is wrong if it is not one."""
    parts = text.split(":")
    if len(parts) != 5 or parts[0] != QR_PREFIX:
        raise ValueError(
            f"not the QR code of a BCL certificate: expected {QR_PREFIX}:<document id>:<digest>:"
            f"<signature>:<seal key id>, got {text[:60]!r}"
        )
    _, document_hex, digest, encoded, key_id = parts
    if re.fullmatch(r"[0-9a-f]{32}", document_hex) is None:
        raise ValueError(f"the document id {document_hex!r} is not 32 lower-case hex digits")
    if re.fullmatch(r"[0-9a-f]{64}", digest) is None:
        raise ValueError(f"the digest {digest!r} is not a SHA-256 in 64 lower-case hex digits")
    if re.fullmatch(r"[0-9a-f]{16}", key_id) is None:
        raise ValueError(f"the seal key id {key_id!r} is not 16 lower-case hex digits")
    try:
        signature = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except binascii.Error as exc:
        raise ValueError(f"the signature is not unpadded base64url ({exc})") from exc
    # The decoder skips foreign characters; only the one canonical spelling is accepted.
    if not signature or _base64url(signature) != encoded:
        raise ValueError(f"the signature {encoded[:20]!r}… is not unpadded base64url")
    return QrSeal(UUID(hex=document_hex), digest, signature, key_id)


def japanese_date(d: date) -> str:
    """The date in the Japanese calendar (和暦), e.g. 令和元年5月1日, 昭和60年4月1日."""
    return f"{_era_year(d)}{d.month}月{d.day}日"


def fiscal_year_name(year: int) -> str:
    """The fiscal year starting in April of ``year`` (年度), e.g. 2024 → 令和6年度."""
    return f"{_era_year(date(year, 4, 1))}度"


def certificate_title(content: CertificateContent) -> str:
    """The printed title; ValueError if the type has no front here or the body does not fit it."""
    try:
        title, kind = _TYPES[content.certificate_type]
    except KeyError:
        raise ValueError(
            f"{content.certificate_type} certificates have no front to draw here; "
            f"drawn are {', '.join(_TYPES)}"
        ) from None
    if content.body.kind != kind:
        raise ValueError(f"a {content.body.kind} body cannot be printed as {title}")
    return title


def front_pages(content: CertificateContent) -> int:
    """How many front pages (so duplex sheets) the document prints."""
    if isinstance(content.body, ResidentRecordCopy):
        return (len(content.body.members) + MEMBERS_PER_PAGE - 1) // MEMBERS_PER_PAGE
    return 1


# ------------------------------------------------------------------------------------ render


def render_document(content: bytes, signature: bytes) -> bytes:
    """The PDF of the certificate whose canonical content bytes and DER signature are given.

    Deterministic: the same bytes in give the same bytes out, on any machine with the same
    font (no clock: the file's dates are the issue time).
    """
    certificate = parse_content(content)
    title = certificate_title(certificate)
    digest = hashlib.sha256(content).hexdigest()
    modules = qr_modules(qr_payload(certificate, digest, signature))
    fronts = _fronts(certificate, title)
    document = Document(certificate_template())
    # One image of a pixel per module, on every back page: a vector path of its runs of dark
    # modules took a tenth of the drawing, in operators and in compressing them.
    size = len(modules)
    qr = document.add_stencil(np.packbits(modules, axis=1).tobytes(), size, size)
    for number, front in enumerate(fronts, start=1):
        paging = f"{number} / {len(fronts)} 頁"
        page = document.new_page()
        _header(page, certificate, paging)
        front(page)
        _front_footer(page, certificate)
        page = document.new_page()
        _header(page, certificate, paging)
        _back(page, certificate, qr)
    stamp = certificate.issued_at.astimezone(JST).strftime("D:%Y%m%d%H%M%S+09'00'")
    return document.output(
        size=(PAGE_WIDTH, PAGE_HEIGHT),
        information={
            "Title": title,
            "Author": certificate.municipality_name,
            "Subject": f"{title} 文書ID {certificate.document_id} "
            f"検証ID {certificate.verification_id}",
            "Creator": "BCL 自治体基盤クラウドシステム",
        },
        created=stamp,
        attachments=(
            (
                ATTACHED_CONTENT,
                content,
                "application/json",
                "電子契印の対象となる証明内容（正規化JSON）",
            ),
            (
                ATTACHED_SIGNATURE,
                signature,
                "application/octet-stream",
                "証明内容のECDSA P-256署名（DER）",
            ),
        ),
        # The file identifier (ISO 32000-1, 14.4): unique to the document, stable across redraws.
        file_id=hashlib.sha256(content + signature).digest()[:16],
    )


def render_documents(documents: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, str]]:
    """The PDFs of (content, signature) pairs with their SHA-256 (hex): a renderer process's
    share of a batch, hashed there too rather than in the issuer's busy loop."""
    drawn = [render_document(content, signature) for content, signature in documents]
    return [(pdf, hashlib.sha256(pdf).hexdigest()) for pdf in drawn]


def font_path() -> Path:
    """IPAexGothic as matplotlib-fontja ships it."""
    # Found without importing matplotlib_fontja: its __init__ imports matplotlib, which is slow.
    spec = importlib.util.find_spec("matplotlib_fontja")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "matplotlib-fontja is not installed: it ships IPAexGothic, the font certificates are "
            "printed in"
        )
    return Path(spec.submodule_search_locations[0]) / "fonts" / "ipaexg.ttf"


@cache
def certificate_template() -> Template:
    """The face and its template subset, read and built once per process."""
    return Template(Typeface(font_path(), FONT), _FORM_WORDING)


def _width(text: str, size: float) -> float:
    return certificate_template().face.width(text, size)


# ------------------------------------------------------------------------------------ fronts


def _fronts(content: CertificateContent, title: str) -> list[Callable[[Page], None]]:
    body = content.body
    if isinstance(body, ResidentRecordCopy):
        chunks = [
            body.members[start : start + MEMBERS_PER_PAGE]
            for start in range(0, len(body.members), MEMBERS_PER_PAGE)
        ]
        sentence = _CERTIFY_HOUSEHOLD if len(body.members) > 1 else _CERTIFY_RESIDENT
        return [
            partial(
                _juminhyo_front,
                content,
                title,
                body,
                chunk,
                sentence if index == len(chunks) - 1 else None,
            )
            for index, chunk in enumerate(chunks)
        ]
    if isinstance(body, SealCertificate):
        return [partial(_inkan_front, content, title, body)]
    if isinstance(body, DisasterCertificate):
        return [partial(_disaster_front, content, title, body)]
    return [partial(_tax_front, content, title, body)]


def _juminhyo_front(
    content: CertificateContent,
    title: str,
    body: ResidentRecordCopy,
    members: Sequence[ResidentEntry],
    sentence: str | None,
    page: Page,
) -> None:
    _title(page, title)
    top = _cell(page, MARGIN, _TOP, CONTENT_WIDTH, 30, "住所", body.address)[1]
    top = _cell(page, MARGIN, top, CONTENT_WIDTH, 30, "世帯主", body.head_of_household)[1]
    top -= 12
    for member in members:
        top = _member(page, top, member) - _MEMBER_GAP
    if sentence is not None:
        _certify(page, content, sentence)


def _member(page: Page, top: float, member: ResidentEntry) -> float:
    """One person's block; returns its bottom."""
    x = MARGIN
    kana = f"　{member.name_kana}" if member.name_kana else ""
    for width, label, value in (
        (0.55, "氏名" + kana, member.name),
        (0.23, "生年月日", japanese_date(member.birth_date)),
        (0.08, "性別", _SEX[member.sex]),
        (0.14, "続柄", member.relationship),
    ):
        x = _cell(page, x, top, CONTENT_WIDTH * width, 32, label, value, size=12.5)[0]
    top -= 32
    x = MARGIN
    for label, when in (
        ("住民となった年月日", member.resident_since),
        ("住所を定めた年月日", member.address_since),
        ("届出年月日", member.notified_on),
    ):
        text = japanese_date(when) if when is not None else ""
        x = _cell(page, x, top, CONTENT_WIDTH / 3, 28, label, text)[0]
    top -= 28
    moved_in = f"{member.previous_address}から転入" if member.previous_address else ""
    return _cell(page, MARGIN, top, CONTENT_WIDTH, 28, "前住所", moved_in)[1]


def _inkan_front(
    content: CertificateContent, title: str, body: SealCertificate, page: Page
) -> None:
    _title(page, title)
    top = _cell(page, MARGIN, _TOP, CONTENT_WIDTH, 34, "登録番号", body.registration_number)[1]
    top = _cell(page, MARGIN, top, CONTENT_WIDTH, 34, "氏名", body.name, size=13)[1]
    x = _cell(
        page, MARGIN, top, CONTENT_WIDTH * 0.6, 34, "生年月日", japanese_date(body.birth_date)
    )[0]
    top = _cell(page, x, top, CONTENT_WIDTH * 0.4, 34, "性別", _SEX[body.sex])[1]
    _cell(page, MARGIN, top, CONTENT_WIDTH, 34, "住所", body.address)
    _certify(page, content, _CERTIFY_SEAL)


def _tax_front(content: CertificateContent, title: str, body: TaxCertificate, page: Page) -> None:
    _title(page, title)
    # Municipal tax of a fiscal year is assessed on the previous calendar year's income; a year
    # in which the era changed is named by the new era, hence its last day.
    income_year = _era_year(date(body.fiscal_year - 1, 12, 31))
    year = f"{fiscal_year_name(body.fiscal_year)}（{income_year}中の所得）"
    top = _cell(page, MARGIN, _TOP, CONTENT_WIDTH, 34, "年度", year)[1]
    top = _cell(page, MARGIN, top, CONTENT_WIDTH, 34, "氏名", body.name, size=13)[1]
    born = japanese_date(body.birth_date)
    top = _cell(page, MARGIN, top, CONTENT_WIDTH, 34, "生年月日", born)[1]
    top = _cell(page, MARGIN, top, CONTENT_WIDTH, 34, "住所", body.address)[1] - 12
    assessed = _yen(body.assessed_yen) + ("（非課税）" if body.assessed_yen == 0 else "")
    x = MARGIN
    for label, amount in (
        ("所得金額", _yen(body.income_yen)),
        ("課税額", assessed),
        ("納付額", _yen(body.paid_yen)),
    ):
        x = _cell(page, x, top, CONTENT_WIDTH / 3, 40, label, amount, size=13, right=True)[0]
    _certify(page, content, _CERTIFY_TAX)


def _disaster_front(
    content: CertificateContent, title: str, body: DisasterCertificate, page: Page
) -> None:
    _title(page, title)
    top = _cell(page, MARGIN, _TOP, CONTENT_WIDTH, 34, "災害名", body.disaster_name)[1]
    occurred = japanese_date(body.occurred_on)
    x = _cell(page, MARGIN, top, CONTENT_WIDTH * 0.6, 34, "災害発生日", occurred)[0]
    kind = DISASTER_KIND_LABELS[body.disaster_kind]
    top = _cell(page, x, top, CONTENT_WIDTH * 0.4, 34, "災害の種類", kind)[1]
    top = _cell(page, MARGIN, top, CONTENT_WIDTH, 34, "被災者氏名", body.name, size=13)[1]
    born = japanese_date(body.birth_date)
    top = _cell(page, MARGIN, top, CONTENT_WIDTH, 34, "生年月日", born)[1]
    top = _cell(page, MARGIN, top, CONTENT_WIDTH, 34, "被災住家の所在地", body.address)[1] - 12
    damage = DAMAGE_LABELS[body.damage]
    _cell(page, MARGIN, top, CONTENT_WIDTH, 44, "住家の被害の程度", damage, size=18)
    _certify(page, content, _DISASTER_SENTENCES[content.certificate_type])


def _certify(page: Page, content: CertificateContent, sentence: str) -> None:
    """The certifying sentence, the date of issue and the mayor with the seal mark."""
    page.set_font(FONT, 11.5)
    page.text(MARGIN + 12, _CERTIFY_TOP, sentence)
    issued_on = content.issued_at.astimezone(JST).date()
    page.text(MARGIN + 24, _CERTIFY_TOP - 26, japanese_date(issued_on))
    # A mark where the mayor's seal (職印) is stamped on a counter-issued certificate; what
    # authenticates this one is the electronic seal.
    seal_size = 44.0
    seal_left = PAGE_WIDTH - MARGIN - seal_size
    mayor_y = _CERTIFY_TOP - 68
    _fit(page, MARGIN + 120, mayor_y, content.mayor, 14, seal_left - MARGIN - 126, right=True)
    page.save()
    page.stroke_rgb(*SEAL_RED)
    page.fill_rgb(*SEAL_RED)
    bottom = mayor_y - seal_size / 2 + 4
    page.line_width(2)
    page.frame(seal_left, bottom, seal_size, seal_size)
    page.line_width(0.6)
    page.frame(seal_left + 3, bottom + 3, seal_size - 6, seal_size - 6)
    page.set_font(FONT, 22)
    page.text(seal_left + seal_size / 2, bottom + seal_size / 2 - 8, "印", align="center")
    page.restore()
    page.set_font(FONT, 8)
    note = _SEAL_NOTE.format(name=content.municipality_name)
    y = mayor_y - 44
    for line in _wrap(note, 8, CONTENT_WIDTH - 24):
        page.text(MARGIN + 12, y, line)
        y -= 12


# -------------------------------------------------------------------------------------- back


def _back(page: Page, content: CertificateContent, qr: str) -> None:
    _title(page, "偽造防止情報")
    page.stencil(qr, (PAGE_WIDTH - _QR_SIZE) / 2, _TOP - _QR_SIZE, _QR_SIZE, _QR_SIZE)
    y = _TOP - _QR_SIZE - 34
    page.set_font(FONT, 20)
    page.text(PAGE_WIDTH / 2, y, f"検証ID: {content.verification_id}", align="center")
    page.set_font(FONT, 10)
    y -= 22
    page.text(
        PAGE_WIDTH / 2,
        y,
        f"電子契印の鍵ID: {content.seal_key_id}（{content.municipality_name}・"
        f"団体コード {content.municipality}）",
        align="center",
    )
    y -= 16
    page.text(PAGE_WIDTH / 2, y, f"文書ID: {content.document_id}", align="center")
    y -= 34
    for paragraph in _BACK_PARAGRAPHS:
        text = paragraph.format(name=content.municipality_name, key_id=content.seal_key_id)
        for line in _wrap(text, 9.5, CONTENT_WIDTH):
            page.set_font(FONT, 9.5)
            page.text(MARGIN, y, line)
            y -= 15
        y -= 6
    page.set_font(MONO, 8.5)
    page.text(MARGIN + 12, y, _OPENSSL_COMMAND)
    y -= 24
    page.set_font(FONT, 9.5)
    for line in _wrap(_PAPER_CHECK, 9.5, CONTENT_WIDTH):
        page.text(MARGIN, y, line)
        y -= 15


def qr_modules(payload: str) -> npt.NDArray[np.uint8]:
    """The QR code (error correction M) of ``payload`` as a square of modules, 1 for dark.

    Encoded by zxing-cpp (C++): a pure-Python encoder took a third of the whole document.

    Always with mask pattern 2, which the standard allows: scoring all eight masks (ISO/IEC
    18004's penalty rules) took 1 ms, four-fifths of the encoding. The payload is digests and a
    signature, so one mask suits every symbol: over 200 payloads of this shape, mask 2's penalty
    averaged 2,182, as low as the best mask chosen for each (2,185), the others 2,515-3,017.
    """
    symbol = zxingcpp.create_barcode(
        payload, zxingcpp.BarcodeFormat.QRCode, ec_level="M", data_mask=2
    )
    image = np.asarray(symbol.to_image(scale=1, add_quiet_zones=False))
    dark: npt.NDArray[np.uint8] = (image == 0).astype(np.uint8)
    return dark


# ----------------------------------------------------------------------------------- drawing


def _header(page: Page, content: CertificateContent, paging: str) -> None:
    page.fill_gray(0)
    page.set_font(FONT, 9)
    page.text(MARGIN, PAGE_HEIGHT - 14 * mm, content.municipality_name)
    page.text(PAGE_WIDTH - MARGIN, PAGE_HEIGHT - 14 * mm, paging, align="right")


def _front_footer(page: Page, content: CertificateContent) -> None:
    page.fill_gray(0.25)
    _fit(
        page,
        MARGIN,
        12 * mm,
        f"文書ID: {content.document_id}　検証ID: {content.verification_id}　"
        f"団体コード: {content.municipality}　電子契印の鍵ID: {content.seal_key_id}",
        7.5,
        CONTENT_WIDTH,
    )
    page.fill_gray(0)


def _title(page: Page, title: str) -> None:
    page.set_font(FONT, 20)
    page.text(PAGE_WIDTH / 2, PAGE_HEIGHT - 30 * mm, title, align="center")


def _cell(
    page: Page,
    x: float,
    top: float,
    width: float,
    height: float,
    label: str,
    value: str,
    *,
    size: float = 10.5,
    right: bool = False,
) -> tuple[float, float]:
    """A framed box with its label small at the top left; returns its (right edge, bottom)."""
    bottom = top - height
    page.line_width(0.5)
    page.stroke_gray(0.45)
    page.frame(x, bottom, width, height)
    page.fill_gray(0.35)
    _fit(page, x + 4, top - 9, label, 7, width - 8)
    page.fill_gray(0)
    if value:
        _fit(page, x + 8, bottom + 7, value, size, width - 16, right=right)
    return x + width, bottom


def _fit(
    page: Page, x: float, y: float, text: str, size: float, width: float, *, right: bool = False
) -> None:
    """``text`` in ``width`` from ``x``, smaller than ``size`` if that is what it takes to fit."""
    natural = _width(text, size)
    page.set_font(FONT, size * width / natural if natural > width else size)
    if right:
        page.text(x + width, y, text, align="right")
    else:
        page.text(x, y, text)


@lru_cache(maxsize=1024)
def _wrap(text: str, size: float, width: float) -> tuple[str, ...]:
    """``text`` broken into lines of at most ``width`` (禁則 kept); the back's paragraphs of one
    municipality are the same in all its documents, hence the cache."""
    lines: list[str] = []
    line, used = "", 0.0
    for token in _TOKENS.findall(text):
        advance = _width(token, size)
        if line and used + advance > width and token not in _NO_LINE_START:
            lines.append(line)
            line, used = "", 0.0
        line += token
        used += advance
    if line:
        lines.append(line)
    return tuple(lines)


def _era_year(d: date) -> str:
    for first_day, era in _ERAS:
        if d >= first_day:
            year = d.year - first_day.year + 1
            return f"{era}{'元' if year == 1 else year}年"
    return f"{d.year}年"  # before 明治: the Western year


def _yen(amount: int) -> str:
    return f"{amount:,}円"


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
