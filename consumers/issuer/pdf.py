"""A small PDF writer for certificates: pages of text, boxes and literal operators, one
TrueType face embedded as subsets, and uncompressed embedded files.

Written for the certificate's hot path rather than taken from a general library: drawing a
certificate through reportlab cost 21 ms of CPU, most of it formatting objects and subsetting the
font anew for every document. Here the face is read once per process and every document embeds
it as two subsets (ISO 32000-1 §9.7, Type 0 fonts with Identity-H):

- the *template* subset holds the glyphs of the printed forms' fixed wording. It is the same in
  every document, so its font program, widths and ToUnicode map are built and compressed once;
- the *document* subset holds the other glyphs drawn (names, addresses, the municipality's name),
  a few dozen, cheap to build and compress.

Text is written as the face's glyph ids (each subset's CIDToGIDMap leads from them to its own
font program), so what a string draws does not depend on the document: it is laid out once per
process and position, and a string mixing the two subsets is drawn as runs that switch font.
Output is deterministic: the same calls give the same bytes in any process.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import groupby
from pathlib import Path
from typing import Final, TypeVar

import numpy as np
from fontTools.ttLib import TTFont

# Tables a TrueType font program embedded in a PDF needs (ISO 32000-1, 9.9); the hinting
# tables are copied when the face has them.
_COPIED_TABLES: Final = (b"cvt ", b"fpgm", b"prep")
# Flate levels: fast for what each document compresses; the best for the template's objects,
# compressed once per process and carried by every stored file.
FAST: Final = 1
BEST: Final = 9

_K = TypeVar("_K")
_V = TypeVar("_V")


def pdf_number(value: float) -> str:
    """A real as PDF writes it, to a hundredth of a point (3.5 µm): no exponent, ever."""
    return f"{value:.2f}"


def pdf_text_string(text: str) -> str:
    """A text string (document information, file descriptions) as UTF-16BE hex with its BOM."""
    return "<FEFF" + text.encode("utf-16-be").hex().upper() + ">"


def pdf_literal(data: bytes) -> str:
    """A literal string of ASCII bytes, with its delimiters and backslash escaped."""
    escaped = data.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    return "(" + escaped.decode("latin-1") + ")"


# ----------------------------------------------------------------------------------- the face


class _Lookup(dict[_K, _V]):
    """A dictionary that computes a missing value once, with ``compute``, and keeps it."""

    def __init__(self, compute: Callable[[_K], _V]) -> None:
        super().__init__()
        self._compute = compute

    def __missing__(self, key: _K) -> _V:
        value = self[key] = self._compute(key)
        return value


@dataclass(frozen=True)
class _Subset:
    """A subset's glyphs (face glyph ids, ascending, also its CIDs) and their characters."""

    glyphs: tuple[int, ...]
    characters: dict[int, str]  # face glyph id → the character it was drawn for
    tag: str


class Typeface:
    """A TrueType face read once: character → glyph, advance widths, and subset font programs.

    Only faces of simple glyphs are handled (no composite glyph refers to another one), which
    is what IPAexGothic is; a face with composites is refused when read.
    """

    def __init__(self, path: Path, name: str) -> None:
        font = TTFont(str(path), lazy=True)
        self.name = name
        self.units_per_em: int = font["head"].unitsPerEm
        order = font.getGlyphOrder()
        ids = {glyph_name: index for index, glyph_name in enumerate(order)}
        self._glyph_of = {code: ids[glyph_name] for code, glyph_name in font.getBestCmap().items()}
        metrics = font["hmtx"].metrics
        self._metrics = [metrics[glyph_name] for glyph_name in order]
        raw = font.reader
        loca = font["loca"]
        glyf = raw["glyf"]
        self._outlines = [glyf[loca[i] : loca[i + 1]] for i in range(len(order))]
        for index, outline in enumerate(self._outlines):
            if outline and struct.unpack_from(">h", outline)[0] < 0:
                raise ValueError(f"{path.name}: glyph {index} is composite, which is not handled")
        self._head = raw["head"]
        self._hhea = raw["hhea"]
        self._maxp = raw["maxp"]
        self._copied = {tag: raw[tag.decode()] for tag in _COPIED_TABLES if tag.decode() in raw}
        head, hhea, os2 = font["head"], font["hhea"], font["OS/2"]
        scale = 1000 / self.units_per_em
        box = " ".join(pdf_number(v * scale) for v in (head.xMin, head.yMin, head.xMax, head.yMax))
        cap_height = getattr(os2, "sCapHeight", hhea.ascent)
        self._descriptor = (
            f"/Flags 4 /FontBBox [{box}] /ItalicAngle 0 /Ascent {pdf_number(hhea.ascent * scale)} "
            f"/Descent {pdf_number(hhea.descent * scale)} "
            f"/CapHeight {pdf_number(cap_height * scale)} /StemV 80"
        )
        self._advance = _Lookup[str, int](lambda c: self._metrics[self.glyph(c)][0])

    def glyph(self, character: str) -> int:
        """The face's glyph for ``character``; 0 (.notdef, a blank box) if it has none."""
        return self._glyph_of.get(ord(character), 0)

    def width(self, text: str, size: float) -> float:
        """The advance of ``text`` set at ``size`` points."""
        return sum(map(self._advance.__getitem__, text)) * size / self.units_per_em

    def subset(self, characters: Iterable[str]) -> _Subset:
        """The subset of the glyphs of ``characters``, its tag derived from them.

        Characters the face lacks are left out: they are drawn as the .notdef glyph.
        """
        drawn: dict[int, str] = {}
        for character in characters:
            glyph = self.glyph(character)
            if glyph:
                drawn.setdefault(glyph, character)
        glyphs = tuple(sorted(drawn))
        digest = hashlib.sha256(struct.pack(f">{len(glyphs)}H", *glyphs)).digest()
        tag = "".join(chr(ord("A") + byte % 26) for byte in digest[:6])
        return _Subset(glyphs, drawn, tag)

    def font_objects(self, pdf: PdfFile, subset: _Subset, *, level: int = FAST) -> int:
        """Writes the Type 0 font of ``subset`` into ``pdf``, its streams compressed at Flate
        ``level``; returns its object number."""
        base = f"/{subset.tag}+{self.name}"
        program = self.program(subset.glyphs)
        font_file = pdf.add_stream(f"/Length1 {len(program)}", program, level=level)
        descriptor = pdf.add(
            f"<< /Type /FontDescriptor /FontName {base} {self._descriptor} "
            f"/FontFile2 {font_file} 0 R >>"
        )
        scale = 1000 / self.units_per_em
        widths = " ".join(f"{g} [{pdf_number(self._metrics[g][0] * scale)}]" for g in subset.glyphs)
        # CID (the face's glyph id) → glyph of the subset's program, 0 where it has none.
        to_program = np.zeros(subset.glyphs[-1] + 1, dtype=">u2")
        to_program[list(subset.glyphs)] = np.arange(1, len(subset.glyphs) + 1)
        cid_map = pdf.add_stream("", to_program.tobytes(), level=level)
        descendant = pdf.add(
            f"<< /Type /Font /Subtype /CIDFontType2 /BaseFont {base} "
            "/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
            f"/FontDescriptor {descriptor} 0 R /DW 1000 /W [{widths}] "
            f"/CIDToGIDMap {cid_map} 0 R >>"
        )
        to_unicode = pdf.add_stream("", _to_unicode(subset), level=level)
        return pdf.add(
            f"<< /Type /Font /Subtype /Type0 /BaseFont {base} /Encoding /Identity-H "
            f"/DescendantFonts [{descendant} 0 R] /ToUnicode {to_unicode} 0 R >>"
        )

    def program(self, glyphs: Sequence[int]) -> bytes:
        """A TrueType font of .notdef and ``glyphs``, renumbered 0, 1, 2, ... in that order."""
        kept = [0, *glyphs]
        outlines = [self._outlines[g] + b"\0" * (-len(self._outlines[g]) % 4) for g in kept]
        offsets = np.cumsum([0, *map(len, outlines)], dtype=np.uint32)
        metrics = [v for g in kept for v in self._metrics[g]]
        count = len(kept)
        # head: checksum adjustment zeroed (set below) and long loca offsets.
        head = (
            self._head[:8]
            + b"\0\0\0\0"
            + self._head[12:50]
            + struct.pack(">h", 1)
            + self._head[52:]
        )
        tables = {
            b"glyf": b"".join(outlines),
            b"head": head,
            b"hhea": self._hhea[:34] + struct.pack(">H", count),
            b"hmtx": struct.pack(f">{2 * count}h", *metrics),
            b"loca": offsets.astype(">u4").tobytes(),
            b"maxp": self._maxp[:4] + struct.pack(">H", count) + self._maxp[6:],
            **self._copied,
        }
        font = bytearray(_sfnt(tables))
        # checkSumAdjustment (OpenType head table): makes the whole font sum to 0xB1B0AFBA.
        adjustment = (0xB1B0AFBA - _checksum(bytes(font))) % 2**32
        head_offset = font.find(b"head") + 8
        (head_at,) = struct.unpack_from(">I", font, head_offset)
        struct.pack_into(">I", font, head_at + 8, adjustment)
        return bytes(font)


def _sfnt(tables: dict[bytes, bytes]) -> bytes:
    tags = sorted(tables)
    count = len(tags)
    power = 1 << (count.bit_length() - 1)
    header = struct.pack(">IHHHH", 0x00010000, count, power * 16, power.bit_length() - 1,
                         count * 16 - power * 16)  # fmt: skip
    directory: list[bytes] = []
    body: list[bytes] = []
    offset = 12 + 16 * count
    for tag in tags:
        data = tables[tag]
        directory.append(struct.pack(">4sIII", tag, _checksum(data), offset, len(data)))
        padded = data + b"\0" * (-len(data) % 4)
        body.append(padded)
        offset += len(padded)
    return header + b"".join(directory) + b"".join(body)


def _checksum(data: bytes) -> int:
    padded = data + b"\0" * (-len(data) % 4)
    return int(np.frombuffer(padded, dtype=">u4").sum(dtype=np.uint64)) % 2**32


def _to_unicode(subset: _Subset) -> bytes:
    """The CMap from the subset's CIDs to the characters drawn, for copying and searching text."""
    entries = [
        f"<{glyph:04X}> <{subset.characters[glyph].encode('utf-16-be').hex().upper()}>"
        for glyph in subset.glyphs
    ]
    blocks = [
        f"{len(chunk)} beginbfchar\n" + "\n".join(chunk) + "\nendbfchar"
        for chunk in (entries[i : i + 100] for i in range(0, len(entries), 100))
    ]
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n"
        + "\n".join(blocks)
        + "\nendcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    ).encode("ascii")


# ------------------------------------------------------------------------------------ the file


class PdfFile:
    """Numbered objects, written out with their cross-reference table."""

    def __init__(self, first: Sequence[bytes] = ()) -> None:
        self.objects: list[bytes] = list(first)

    def add(self, body: str | bytes) -> int:
        self.objects.append(body.encode("latin-1") if isinstance(body, str) else body)
        return len(self.objects)

    def reserve(self) -> int:
        return self.add(b"")

    def put(self, number: int, body: str) -> None:
        self.objects[number - 1] = body.encode("latin-1")

    def add_stream(self, entries: str, data: bytes, *, level: int | None = FAST) -> int:
        """A stream of ``data`` with the dictionary ``entries``, Flate-compressed at ``level``
        (``None``: stored as it is)."""
        if level is not None:
            data = zlib.compress(data, level)
            entries += " /Filter /FlateDecode"
        head = " ".join(("<<", entries.strip(), f"/Length {len(data)} >>\nstream\n"))
        return self.add(head.encode("latin-1") + data + b"\nendstream")

    def output(self, root: int, info: int, file_id: bytes) -> bytes:
        parts = [b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"]
        offsets: list[int] = []
        position = len(parts[0])
        for number, body in enumerate(self.objects, start=1):
            offsets.append(position)
            chunk = b"%d 0 obj\n%b\nendobj\n" % (number, body)
            parts.append(chunk)
            position += len(chunk)
        count = len(self.objects) + 1
        xref = "".join(f"{offset:010d} 00000 n \n" for offset in offsets)
        identifier = file_id.hex().upper()
        parts.append(
            (
                f"xref\n0 {count}\n0000000000 65535 f \n{xref}"
                f"trailer\n<< /Size {count} /Root {root} 0 R /Info {info} 0 R "
                f"/ID [<{identifier}> <{identifier}>] >>\nstartxref\n{position}\n%%EOF\n"
            ).encode("ascii")
        )
        return b"".join(parts)


# ----------------------------------------------------------------------------------- the pages


class Page:
    """A page's content stream, drawn in the face (its two subsets) and Courier."""

    def __init__(self, document: Document) -> None:
        self._document = document
        self._parts: list[str] = []
        self._font: tuple[str, float] = ("", 0.0)

    def set_font(self, font: str, size: float) -> None:
        """``font`` is the face's name or ``Courier`` (standard, not embedded, ASCII only)."""
        self._font = (font, size)

    def text(self, x: float, y: float, text: str, *, align: str = "left") -> None:
        """``text`` from (x, y), or ending or centred there (``align`` right or center)."""
        operators, lacking = self._document.template.shown(*self._font, x, y, text, align)
        self._parts.append(operators)
        if lacking:
            self._document.characters.update(lacking)

    def fill_gray(self, level: float) -> None:
        self._parts.append(f"{pdf_number(level)} g")

    def stroke_gray(self, level: float) -> None:
        self._parts.append(f"{pdf_number(level)} G")

    def fill_rgb(self, red: float, green: float, blue: float) -> None:
        self._parts.append(f"{pdf_number(red)} {pdf_number(green)} {pdf_number(blue)} rg")

    def stroke_rgb(self, red: float, green: float, blue: float) -> None:
        self._parts.append(f"{pdf_number(red)} {pdf_number(green)} {pdf_number(blue)} RG")

    def line_width(self, width: float) -> None:
        self._parts.append(f"{pdf_number(width)} w")

    def frame(self, x: float, y: float, width: float, height: float) -> None:
        """A stroked rectangle."""
        numbers = " ".join(pdf_number(v) for v in (x, y, width, height))
        self._parts.append(f"{numbers} re S")

    def save(self) -> None:
        self._parts.append("q")

    def restore(self) -> None:
        self._parts.append("Q")

    def stencil(self, name: str, x: float, y: float, width: float, height: float) -> None:
        """The document's stencil ``name`` (``Document.add_stencil``) painted black over the
        box at (x, y)."""
        box = " ".join(pdf_number(v) for v in (width, 0, 0, height, x, y))
        self._parts.append(f"q 0 g {box} cm /{name} Do Q")

    def content(self) -> bytes:
        return "\n".join(self._parts).encode("latin-1")


class Document:
    """Pages drawn in ``template``'s face, and the file around them.

    The characters drawn that the template subset lacks make the document's own subset.
    """

    def __init__(self, template: Template) -> None:
        self.template = template
        self.pages: list[Page] = []
        self.characters: set[str] = set()
        self.stencils: list[tuple[bytes, int, int]] = []

    def new_page(self) -> Page:
        page = Page(self)
        self.pages.append(page)
        return page

    def add_stencil(self, bits: bytes, columns: int, rows: int) -> str:
        """A 1-bit image mask, painted where a bit is 1: ``rows`` rows of ``columns`` bits from
        the top, each row padded to whole bytes. Returns its name in the pages' resources."""
        self.stencils.append((bits, columns, rows))
        return f"S{len(self.stencils)}"

    def output(
        self,
        *,
        size: tuple[float, float],
        information: dict[str, str],
        created: str,
        attachments: Sequence[tuple[str, bytes, str, str]],
        file_id: bytes,
    ) -> bytes:
        """The file.

        ``information`` holds the document information's text entries, ``created`` its dates
        (``D:YYYYMMDDHHmmSS+HH'mm'``); ``attachments`` are (name, data, media type, description),
        embedded uncompressed so that their bytes appear verbatim in the file.
        """
        face = self.template.face
        pdf = PdfFile(self.template.objects)
        document = face.subset(sorted(self.characters))
        fonts = f"/FT {self.template.font} 0 R /FC {pdf.add(_COURIER)} 0 R"
        if document.glyphs:
            fonts += f" /FD {face.font_objects(pdf, document)} 0 R"
        images = " ".join(
            f"/S{number} {pdf.add_stream(_STENCIL % (columns, rows), bits)} 0 R"
            for number, (bits, columns, rows) in enumerate(self.stencils, start=1)
        )
        resources = pdf.add(
            f"<< /Font << {fonts} >> /XObject << {images} >> /ProcSet [/PDF /Text /ImageB] >>"
        )
        tree = pdf.reserve()
        box = f"[0 0 {pdf_number(size[0])} {pdf_number(size[1])}]"
        kids = []
        for page in self.pages:
            contents = pdf.add_stream("", page.content())
            kids.append(
                pdf.add(
                    f"<< /Type /Page /Parent {tree} 0 R /MediaBox {box} "
                    f"/Resources {resources} 0 R /Contents {contents} 0 R >>"
                )
            )
        references = " ".join(f"{kid} 0 R" for kid in kids)
        pdf.put(tree, f"<< /Type /Pages /Count {len(kids)} /Kids [{references}] >>")
        names = []
        for name, data, media_type, description in attachments:
            embedded = pdf.add_stream(
                f"/Type /EmbeddedFile /Subtype /{media_type.replace('/', '#2F')} "
                f"/Params << /Size {len(data)} >>",
                data,
                level=None,
            )
            spec = pdf.add(
                f"<< /Type /Filespec /F ({name}) /UF ({name}) "
                f"/Desc {pdf_text_string(description)} /EF << /F {embedded} 0 R >> >>"
            )
            names.append(f"({name}) {spec} 0 R")
        catalog = pdf.add(
            f"<< /Type /Catalog /Pages {tree} 0 R "
            f"/Names << /EmbeddedFiles << /Names [{' '.join(names)}] >> >> >>"
        )
        entries = " ".join(f"/{key} {pdf_text_string(value)}" for key, value in information.items())
        info = pdf.add(f"<< {entries} /CreationDate ({created}) /ModDate ({created}) >>")
        return pdf.output(catalog, info, file_id)


# Decode [1 0]: a 1 bit is painted (an image mask paints its 0 bits by default).
_STENCIL: Final = (
    "/Type /XObject /Subtype /Image /Width %d /Height %d /ImageMask true /BitsPerComponent 1 "
    "/Decode [1 0]"
)
_COURIER: Final = "<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>"


class Template:
    """The face and its template subset, whose font objects are built and compressed once.

    They open every file as its first objects, so their numbers, and with them their bytes,
    are the same in every document.
    """

    def __init__(self, face: Typeface, wording: str) -> None:
        self.face = face
        self.subset = face.subset(sorted(set(wording)))
        pdf = PdfFile()
        self.font = face.font_objects(pdf, self.subset, level=BEST)
        self.objects = tuple(pdf.objects)
        in_template = frozenset(self.subset.glyphs)
        # Character → its glyph id in four hex digits, and whether the template subset has it (a
        # character the face lacks is drawn as .notdef, 0000, from the template).
        self._codes = _Lookup[str, tuple[str, bool]](
            lambda character: (
                f"{(glyph := face.glyph(character)):04X}",
                glyph in in_template or not glyph,
            )
        )
        # The same strings are drawn at the same places in document after document.
        self.shown = lru_cache(maxsize=8192)(self._show)

    def _show(
        self, font: str, size: float, x: float, y: float, text: str, align: str
    ) -> tuple[str, str]:
        """The operators drawing ``text``, and its characters the template subset lacks."""
        if align != "left":
            width = self.face.width(text, size)
            x -= width if align == "right" else width / 2
        start = f"BT 1 0 0 1 {pdf_number(x)} {pdf_number(y)} Tm"
        size_text = pdf_number(size)
        if font == "Courier":
            return f"{start} /FC {size_text} Tf {pdf_literal(text.encode('ascii'))} Tj ET", ""
        codes = [self._codes[character] for character in text]
        runs: list[str] = [start]
        lacking: list[str] = []
        at = 0
        for in_template, run in groupby(codes, key=lambda code: code[1]):
            hexed = "".join(code for code, _ in run)
            runs.append(f"/{'FT' if in_template else 'FD'} {size_text} Tf <{hexed}> Tj")
            end = at + len(hexed) // 4
            if not in_template:
                lacking.append(text[at:end])
            at = end
        runs.append("ET")
        return " ".join(runs), "".join(lacking)
