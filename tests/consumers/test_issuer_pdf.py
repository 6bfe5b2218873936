"""The certificate's PDF writer (``consumers/issuer/pdf.py``): font subsets and the file."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path

import pikepdf
import pytest
from fontTools.ttLib import TTFont
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from consumers.issuer.document import certificate_template, font_path
from consumers.issuer.pdf import Document, Template, Typeface, pdf_literal, pdf_number

FACE: Typeface = certificate_template().face
WORDING = "住民票の写し　証明する。0123456789"


def small_template() -> Template:
    return Template(FACE, WORDING)


def drawn(*lines: str, courier: str = "") -> bytes:
    document = Document(small_template())
    page = document.new_page()
    for number, line in enumerate(lines):
        page.set_font(FACE.name, 12)
        page.text(50, 700 - 20 * number, line)
    if courier:
        page.set_font("Courier", 9)
        page.text(50, 100, courier)
    return document.output(
        size=(595.28, 841.89),
        information={"Title": "住民票の写し"},
        created="D:20240401083000+09'00'",
        attachments=(("certificate.json", b'{"a":1}', "application/json", "証明内容"),),
        file_id=b"\x01" * 16,
    )


def test_a_subset_program_is_a_truetype_font_with_the_glyphs_renumbered() -> None:
    subset = FACE.subset("山田太郎")
    program = FACE.program(subset.glyphs)

    font = TTFont(io.BytesIO(program))

    assert font["maxp"].numGlyphs == 5  # .notdef and the four
    assert font["head"].indexToLocFormat == 1
    original = TTFont(font_path())
    for new_id, glyph in enumerate(subset.glyphs, start=1):
        name = original.getGlyphOrder()[glyph]
        copied = font["glyf"][font.getGlyphOrder()[new_id]]
        source = original["glyf"][name]
        assert copied.getCoordinates(font["glyf"])[0] == source.getCoordinates(original["glyf"])[0]
        assert font["hmtx"].metrics[font.getGlyphOrder()[new_id]] == original["hmtx"][name]
    # The whole font sums to the OpenType magic number once checkSumAdjustment is set.
    padded = program + b"\0" * (-len(program) % 4)
    total = sum(struct.unpack(f">{len(padded) // 4}I", padded)) % 2**32
    assert total == 0xB1B0AFBA


def test_a_subset_holds_each_glyph_once_in_glyph_order() -> None:
    subset = FACE.subset("田山田")
    assert subset.glyphs == tuple(sorted((FACE.glyph("田"), FACE.glyph("山"))))
    assert subset.characters == {FACE.glyph("田"): "田", FACE.glyph("山"): "山"}
    assert FACE.subset("山田").tag == FACE.subset("田山").tag != FACE.subset("山").tag


def test_text_from_both_subsets_reads_back() -> None:
    # 住民票 and the digits come from the template subset, 山田 and 千代田区 from the document's.
    lines = ("住民票の写し", "山田 太郎　令和6年4月1日", "千代田区1234")
    pdf = drawn(*lines)

    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()

    for line in lines:
        assert line in text
    with pikepdf.open(io.BytesIO(pdf)) as document:
        assert document.check_pdf_syntax() == []
        fonts = document.pages[0].Resources.Font
        assert set(fonts.keys()) == {"/FT", "/FD", "/FC"}
        # The document subset holds exactly the characters the template lacks.
        program = fonts.FD.DescendantFonts[0].FontDescriptor.FontFile2.read_bytes()
        lacking = set("山田 太郎令和年月日千代区")  # the ASCII space too
        assert TTFont(io.BytesIO(program))["maxp"].numGlyphs == 1 + len(lacking)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler's pdftotext")
def test_poppler_extracts_the_japanese_text(tmp_path: Path) -> None:
    (tmp_path / "drawn.pdf").write_bytes(drawn("住民票の写し", "山田 太郎"))

    shown = subprocess.run(
        ["pdftotext", "drawn.pdf", "-"], cwd=tmp_path, capture_output=True, text=True, check=True
    )

    assert "住民票の写し" in shown.stdout
    assert "山田 太郎" in shown.stdout
    assert shown.stderr == ""


def test_a_document_drawn_only_from_the_template_embeds_no_document_subset() -> None:
    with pikepdf.open(io.BytesIO(drawn("住民票の写し"))) as document:
        assert "/FD" not in document.pages[0].Resources.Font


def test_a_character_the_face_lacks_is_drawn_as_notdef() -> None:
    lacking = "\U0001f600"  # no emoji in IPAexGothic
    assert FACE.glyph(lacking) == 0
    with pikepdf.open(io.BytesIO(drawn(f"山{lacking}田"))) as document:
        operators = pikepdf.unparse_content_stream(pikepdf.parse_content_stream(document.pages[0]))
    assert b"<0000>" in operators


def test_courier_text_is_written_as_an_escaped_literal() -> None:
    pdf = drawn("住民票", courier=r"openssl (dgst) \ -verify")
    with pikepdf.open(io.BytesIO(pdf)) as document:
        shown = [
            bytes(instruction.operands[0])
            for instruction in pikepdf.parse_content_stream(document.pages[0])
            if str(instruction.operator) == "Tj"
        ]
    assert rb"openssl (dgst) \ -verify" in shown


def test_the_same_calls_give_the_same_bytes() -> None:
    assert drawn("山田 太郎", "住民票") == drawn("山田 太郎", "住民票")


def test_the_widths_follow_the_face_metrics() -> None:
    # IPAexGothic: ideographs are full width (1 em), ASCII digits proportional.
    assert FACE.width("山田", 10) == pytest.approx(20)
    assert 0 < FACE.width("1", 10) < 10


@settings(max_examples=200)
@given(value=st.floats(min_value=-10_000, max_value=10_000, allow_nan=False))
def test_numbers_are_plain_pdf_reals(value: float) -> None:
    written = pdf_number(value)
    assert "e" not in written.lower()
    # Off by half a hundredth at most: a tie such as 0.125 rounds to even, and the difference
    # computed in binary floating point exceeds 0.005 by a few units in the last place.
    assert abs(float(written) - value) <= 0.005 + 1e-9


def test_literal_strings_escape_their_delimiters() -> None:
    assert pdf_literal(b"a(b)c\\d") == r"(a\(b\)c\\d)"
