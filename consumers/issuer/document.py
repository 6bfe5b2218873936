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
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache, partial
from pathlib import Path
from typing import Final
from uuid import UUID
from zoneinfo import ZoneInfo

import numpy as np
import zxingcpp
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfdoc, pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

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

JST = ZoneInfo("Asia/Tokyo")

FONT: Final = "IPAexGothic"
MONO: Final = "Courier"  # one of the 14 standard fonts: nothing to embed for the command line
PAGE_WIDTH, PAGE_HEIGHT = A4
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
    libraries (reportlab's invariant mode, no clock: the file's dates are the issue time).
    """
    _register_font()
    certificate = parse_content(content)
    title = certificate_title(certificate)
    digest = hashlib.sha256(content).hexdigest()
    modules = qr_modules(qr_payload(certificate, digest, signature))
    # The same symbol on every back page: drawn once.
    qr_drawing = _qr_operators(modules, (PAGE_WIDTH - _QR_SIZE) / 2, _TOP - _QR_SIZE, _QR_SIZE)
    fronts = _fronts(certificate, title)
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, invariant=1, pageCompression=1)
    _describe(canvas, certificate, title, content, signature)
    for number, front in enumerate(fronts, start=1):
        paging = f"{number} / {len(fronts)} 頁"
        _header(canvas, certificate, paging)
        front(canvas)
        _front_footer(canvas, certificate)
        canvas.showPage()
        _header(canvas, certificate, paging)
        _back(canvas, certificate, qr_drawing)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


@cache
def _register_font() -> None:
    # Found without importing matplotlib_fontja: its __init__ imports matplotlib, which is slow.
    spec = importlib.util.find_spec("matplotlib_fontja")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "matplotlib-fontja is not installed: it ships IPAexGothic, the font certificates are "
            "printed in"
        )
    path = Path(spec.submodule_search_locations[0]) / "fonts" / "ipaexg.ttf"
    # Not ASCII-readable: subsets hold only the characters drawn, so the font objects stay small.
    pdfmetrics.registerFont(TTFont(FONT, str(path), asciiReadable=False))


def _describe(
    canvas: Canvas, content: CertificateContent, title: str, signed: bytes, signature: bytes
) -> None:
    """The document information and the two attachments.

    The canvas has no call for embedded files, so they go straight into reportlab's PDF object
    layer: parsing and rewriting the finished file with pypdf to add them would cost a third of
    the render time. A stream given no filter is written as it is, so the signed bytes appear
    verbatim in the file.
    """
    canvas.setTitle(title)
    canvas.setAuthor(content.municipality_name)
    # The subject also makes reportlab's file id, a digest of the document information, unique.
    canvas.setSubject(f"{title} 文書ID {content.document_id} 検証ID {content.verification_id}")
    canvas.setCreator("BCL 自治体基盤クラウドシステム")
    stamp = content.issued_at.astimezone(JST).strftime("D:%Y%m%d%H%M%S+09'00'")
    canvas.setDateFormatter(lambda *_: stamp)
    document = canvas._doc
    names: list[object] = []
    for name, data, media_type, description in (
        (
            ATTACHED_CONTENT,
            signed,
            "application/json",
            "電子契印の対象となる証明内容（正規化JSON）",
        ),
        (
            ATTACHED_SIGNATURE,
            signature,
            "application/octet-stream",
            "証明内容のECDSA P-256署名（DER）",
        ),
    ):
        stream = pdfdoc.PDFStream(
            pdfdoc.PDFDictionary(
                {
                    "Type": pdfdoc.PDFName("EmbeddedFile"),
                    # Written as is: PDFName would leave the slash of a media type unescaped.
                    "Subtype": "/" + media_type.replace("/", "#2F"),
                    "Params": pdfdoc.PDFDictionary({"Size": len(data)}),
                }
            ),
            content=data,
        )
        filespec = pdfdoc.PDFDictionary(
            {
                "Type": pdfdoc.PDFName("Filespec"),
                "F": pdfdoc.PDFString(name),
                "UF": pdfdoc.PDFString(name),
                "Desc": pdfdoc.PDFString(description),
                "EF": pdfdoc.PDFDictionary({"F": document.Reference(stream)}),
            }
        )
        names += [pdfdoc.PDFString(name), document.Reference(filespec)]
    document.Catalog.Names = pdfdoc.PDFDictionary(
        {"EmbeddedFiles": pdfdoc.PDFDictionary({"Names": pdfdoc.PDFArray(names)})}
    )


# ------------------------------------------------------------------------------------ fronts


def _fronts(content: CertificateContent, title: str) -> list[Callable[[Canvas], None]]:
    body = content.body
    if isinstance(body, ResidentRecordCopy):
        chunks = [
            body.members[start : start + MEMBERS_PER_PAGE]
            for start in range(0, len(body.members), MEMBERS_PER_PAGE)
        ]
        sentence = (
            "この写しは、世帯全員の住民票の原本と相違ないことを証明する。"
            if len(body.members) > 1
            else "この写しは、住民票の原本と相違ないことを証明する。"
        )
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
    canvas: Canvas,
) -> None:
    _title(canvas, title)
    top = _cell(canvas, MARGIN, _TOP, CONTENT_WIDTH, 30, "住所", body.address)[1]
    top = _cell(canvas, MARGIN, top, CONTENT_WIDTH, 30, "世帯主", body.head_of_household)[1]
    top -= 12
    for member in members:
        top = _member(canvas, top, member) - _MEMBER_GAP
    if sentence is not None:
        _certify(canvas, content, sentence)


def _member(canvas: Canvas, top: float, member: ResidentEntry) -> float:
    """One person's block; returns its bottom."""
    x = MARGIN
    kana = f"　{member.name_kana}" if member.name_kana else ""
    for width, label, value in (
        (0.55, "氏名" + kana, member.name),
        (0.23, "生年月日", japanese_date(member.birth_date)),
        (0.08, "性別", _SEX[member.sex]),
        (0.14, "続柄", member.relationship),
    ):
        x = _cell(canvas, x, top, CONTENT_WIDTH * width, 32, label, value, size=12.5)[0]
    top -= 32
    x = MARGIN
    for label, when in (
        ("住民となった年月日", member.resident_since),
        ("住所を定めた年月日", member.address_since),
        ("届出年月日", member.notified_on),
    ):
        text = japanese_date(when) if when is not None else ""
        x = _cell(canvas, x, top, CONTENT_WIDTH / 3, 28, label, text)[0]
    top -= 28
    moved_in = f"{member.previous_address}から転入" if member.previous_address else ""
    return _cell(canvas, MARGIN, top, CONTENT_WIDTH, 28, "前住所", moved_in)[1]


def _inkan_front(
    content: CertificateContent, title: str, body: SealCertificate, canvas: Canvas
) -> None:
    _title(canvas, title)
    top = _cell(canvas, MARGIN, _TOP, CONTENT_WIDTH, 34, "登録番号", body.registration_number)[1]
    top = _cell(canvas, MARGIN, top, CONTENT_WIDTH, 34, "氏名", body.name, size=13)[1]
    x = _cell(
        canvas, MARGIN, top, CONTENT_WIDTH * 0.6, 34, "生年月日", japanese_date(body.birth_date)
    )[0]
    top = _cell(canvas, x, top, CONTENT_WIDTH * 0.4, 34, "性別", _SEX[body.sex])[1]
    _cell(canvas, MARGIN, top, CONTENT_WIDTH, 34, "住所", body.address)
    _certify(canvas, content, "この写しは、登録されている印影と相違ないことを証明する。")


def _tax_front(
    content: CertificateContent, title: str, body: TaxCertificate, canvas: Canvas
) -> None:
    _title(canvas, title)
    # Municipal tax of a fiscal year is assessed on the previous calendar year's income; a year
    # in which the era changed is named by the new era, hence its last day.
    income_year = _era_year(date(body.fiscal_year - 1, 12, 31))
    year = f"{fiscal_year_name(body.fiscal_year)}（{income_year}中の所得）"
    top = _cell(canvas, MARGIN, _TOP, CONTENT_WIDTH, 34, "年度", year)[1]
    top = _cell(canvas, MARGIN, top, CONTENT_WIDTH, 34, "氏名", body.name, size=13)[1]
    born = japanese_date(body.birth_date)
    top = _cell(canvas, MARGIN, top, CONTENT_WIDTH, 34, "生年月日", born)[1]
    top = _cell(canvas, MARGIN, top, CONTENT_WIDTH, 34, "住所", body.address)[1] - 12
    assessed = _yen(body.assessed_yen) + ("（非課税）" if body.assessed_yen == 0 else "")
    x = MARGIN
    for label, amount in (
        ("所得金額", _yen(body.income_yen)),
        ("課税額", assessed),
        ("納付額", _yen(body.paid_yen)),
    ):
        x = _cell(canvas, x, top, CONTENT_WIDTH / 3, 40, label, amount, size=13, right=True)[0]
    _certify(canvas, content, "上記のとおり相違ないことを証明する。")


def _disaster_front(
    content: CertificateContent, title: str, body: DisasterCertificate, canvas: Canvas
) -> None:
    _title(canvas, title)
    top = _cell(canvas, MARGIN, _TOP, CONTENT_WIDTH, 34, "災害名", body.disaster_name)[1]
    occurred = japanese_date(body.occurred_on)
    x = _cell(canvas, MARGIN, top, CONTENT_WIDTH * 0.6, 34, "災害発生日", occurred)[0]
    kind = DISASTER_KIND_LABELS[body.disaster_kind]
    top = _cell(canvas, x, top, CONTENT_WIDTH * 0.4, 34, "災害の種類", kind)[1]
    top = _cell(canvas, MARGIN, top, CONTENT_WIDTH, 34, "被災者氏名", body.name, size=13)[1]
    born = japanese_date(body.birth_date)
    top = _cell(canvas, MARGIN, top, CONTENT_WIDTH, 34, "生年月日", born)[1]
    top = _cell(canvas, MARGIN, top, CONTENT_WIDTH, 34, "被災住家の所在地", body.address)[1] - 12
    damage = DAMAGE_LABELS[body.damage]
    _cell(canvas, MARGIN, top, CONTENT_WIDTH, 44, "住家の被害の程度", damage, size=18)
    _certify(canvas, content, _DISASTER_SENTENCES[content.certificate_type])


def _certify(canvas: Canvas, content: CertificateContent, sentence: str) -> None:
    """The certifying sentence, the date of issue and the mayor with the seal mark."""
    canvas.setFont(FONT, 11.5)
    canvas.drawString(MARGIN + 12, _CERTIFY_TOP, sentence)
    issued_on = content.issued_at.astimezone(JST).date()
    canvas.drawString(MARGIN + 24, _CERTIFY_TOP - 26, japanese_date(issued_on))
    # A mark where the mayor's seal (職印) is stamped on a counter-issued certificate; what
    # authenticates this one is the electronic seal.
    seal_size = 44.0
    seal_left = PAGE_WIDTH - MARGIN - seal_size
    mayor_y = _CERTIFY_TOP - 68
    _fit(canvas, MARGIN + 120, mayor_y, content.mayor, 14, seal_left - MARGIN - 126, right=True)
    canvas.saveState()
    canvas.setStrokeColorRGB(*SEAL_RED)
    canvas.setFillColorRGB(*SEAL_RED)
    bottom = mayor_y - seal_size / 2 + 4
    canvas.setLineWidth(2)
    canvas.rect(seal_left, bottom, seal_size, seal_size, stroke=1, fill=0)
    canvas.setLineWidth(0.6)
    canvas.rect(seal_left + 3, bottom + 3, seal_size - 6, seal_size - 6, stroke=1, fill=0)
    canvas.setFont(FONT, 22)
    canvas.drawCentredString(seal_left + seal_size / 2, bottom + seal_size / 2 - 8, "印")
    canvas.restoreState()
    canvas.setFont(FONT, 8)
    note = (
        f"この証明書には{content.municipality_name}の電子契印（電子署名）が付されています。"
        "真正性は裏面の偽造防止情報（二次元コード・検証ID）で確かめられます。"
    )
    y = mayor_y - 44
    for line in _wrap(note, 8, CONTENT_WIDTH - 24):
        canvas.drawString(MARGIN + 12, y, line)
        y -= 12


# -------------------------------------------------------------------------------------- back


def _back(canvas: Canvas, content: CertificateContent, qr_drawing: str) -> None:
    _title(canvas, "偽造防止情報")
    canvas.addLiteral(qr_drawing)
    y = _TOP - _QR_SIZE - 34
    canvas.setFont(FONT, 20)
    canvas.drawCentredString(PAGE_WIDTH / 2, y, f"検証ID: {content.verification_id}")
    canvas.setFont(FONT, 10)
    y -= 22
    canvas.drawCentredString(
        PAGE_WIDTH / 2,
        y,
        f"電子契印の鍵ID: {content.seal_key_id}（{content.municipality_name}・"
        f"団体コード {content.municipality}）",
    )
    y -= 16
    canvas.drawCentredString(PAGE_WIDTH / 2, y, f"文書ID: {content.document_id}")
    y -= 34
    name = content.municipality_name
    paragraphs = (
        f"この面は、表面の証明書が{name}により発行され、発行後に書き換えられていないことを"
        "確かめるための情報です。",
        f"二次元コードには、文書ID、証明内容のSHA-256ダイジェスト、{name}の電子契印"
        "（ECDSA P-256による電子署名）とその鍵IDが記録されています。電子契印は"
        f"{name}の公開鍵で検証できます。",
        f"PDFファイルには証明内容（{ATTACHED_CONTENT}）と電子契印（{ATTACHED_SIGNATURE}）が"
        f"添付されています。{name}の公開鍵（鍵ID {content.seal_key_id}）を seal.pub.pem として"
        "保存し、次のコマンドを実行して「Verified OK」と表示されれば、証明内容は発行時のままです。",
    )
    for paragraph in paragraphs:
        for line in _wrap(paragraph, 9.5, CONTENT_WIDTH):
            canvas.setFont(FONT, 9.5)
            canvas.drawString(MARGIN, y, line)
            y -= 15
        y -= 6
    canvas.setFont(MONO, 8.5)
    canvas.drawString(
        MARGIN + 12,
        y,
        f"openssl dgst -sha256 -verify seal.pub.pem -signature {ATTACHED_SIGNATURE} "
        f"{ATTACHED_CONTENT}",
    )
    y -= 24
    canvas.setFont(FONT, 9.5)
    for line in _wrap(
        "紙の証明書は、検証IDを検証サービスに入力すると、発行された内容と照合できます。",
        9.5,
        CONTENT_WIDTH,
    ):
        canvas.drawString(MARGIN, y, line)
        y -= 15


def qr_modules(payload: str) -> list[bytes]:
    """The QR code (error correction M) of ``payload`` as rows of modules, 1 for dark.

    Encoded by zxing-cpp (C++): a pure-Python encoder took a third of the whole document.
    """
    symbol = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    image = np.asarray(symbol.to_image(scale=1, add_quiet_zones=False))
    return [row.tobytes() for row in (image == 0).astype(np.uint8)]


def _qr_operators(matrix: list[bytes], x: float, y: float, size: float) -> str:
    """The symbol with its bottom-left corner at (x, y), the quiet zone left to the white paper.

    One path of one rectangle per horizontal run of dark modules, in module units: written as
    PDF operators because formatting a thousand rectangles through reportlab's path object
    costs a third of the whole document.
    """
    count = len(matrix)
    module = size / count
    dark = np.frombuffer(b"".join(matrix), dtype=np.uint8).reshape(count, count)
    edges = np.diff(np.pad(dark, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    # x, y, width of each run, formatted in one call: one f-string per run cost 2 ms.
    runs = np.column_stack((starts, count - 1 - rows, ends - starts)).ravel().tolist()
    drawn = ("%d %d %d 1 re\n" * (len(runs) // 3)) % tuple(runs)
    return f"q 0 g {module:.4f} 0 0 {module:.4f} {x:.4f} {y:.4f} cm\n{drawn}f Q"


# ----------------------------------------------------------------------------------- drawing


def _header(canvas: Canvas, content: CertificateContent, paging: str) -> None:
    canvas.setFillGray(0)
    canvas.setFont(FONT, 9)
    canvas.drawString(MARGIN, PAGE_HEIGHT - 14 * mm, content.municipality_name)
    canvas.drawRightString(PAGE_WIDTH - MARGIN, PAGE_HEIGHT - 14 * mm, paging)


def _front_footer(canvas: Canvas, content: CertificateContent) -> None:
    canvas.setFillGray(0.25)
    _fit(
        canvas,
        MARGIN,
        12 * mm,
        f"文書ID: {content.document_id}　検証ID: {content.verification_id}　"
        f"団体コード: {content.municipality}　電子契印の鍵ID: {content.seal_key_id}",
        7.5,
        CONTENT_WIDTH,
    )
    canvas.setFillGray(0)


def _title(canvas: Canvas, title: str) -> None:
    canvas.setFont(FONT, 20)
    canvas.drawCentredString(PAGE_WIDTH / 2, PAGE_HEIGHT - 30 * mm, title)


def _cell(
    canvas: Canvas,
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
    canvas.setLineWidth(0.5)
    canvas.setStrokeGray(0.45)
    canvas.rect(x, bottom, width, height, stroke=1, fill=0)
    canvas.setFillGray(0.35)
    _fit(canvas, x + 4, top - 9, label, 7, width - 8)
    canvas.setFillGray(0)
    if value:
        _fit(canvas, x + 8, bottom + 7, value, size, width - 16, right=right)
    return x + width, bottom


def _fit(
    canvas: Canvas, x: float, y: float, text: str, size: float, width: float, *, right: bool = False
) -> None:
    """``text`` in ``width`` from ``x``, smaller than ``size`` if that is what it takes to fit."""
    natural = float(pdfmetrics.stringWidth(text, FONT, size))
    canvas.setFont(FONT, size * width / natural if natural > width else size)
    if right:
        canvas.drawRightString(x + width, y, text)
    else:
        canvas.drawString(x, y, text)


def _wrap(text: str, size: float, width: float) -> list[str]:
    lines: list[str] = []
    line, used = "", 0.0
    for token in _TOKENS.findall(text):
        advance = float(pdfmetrics.stringWidth(token, FONT, size))
        if line and used + advance > width and token not in _NO_LINE_START:
            lines.append(line)
            line, used = "", 0.0
        line += token
        used += advance
    if line:
        lines.append(line)
    return lines


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
