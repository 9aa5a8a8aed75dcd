"""index.cleanup: the normalisation every reader applies to every text field."""

from __future__ import annotations

import unicodedata

import pytest

from index.cleanup import clean_line, clean_paragraphs, clean_text


def test_composite_tone_marks_become_nfc() -> None:
    # "Việt" typed the Windows-1258 way: precomposed "ệ"'s base "ê" + a combining dot below.
    composite = "Vi\u00ea\u0323t Nam"
    assert composite != "Việt Nam"
    assert clean_text(composite) == "Việt Nam"
    fully_decomposed = unicodedata.normalize("NFD", "Tin tức thể thao")
    assert clean_text(fully_decomposed) == "Tin tức thể thao"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Hà Nội &amp; TP HCM", "Hà Nội & TP HCM"),
        ("Xem tiếp &gt;&gt;", "Xem tiếp >>"),
        ("Giá&nbsp;vàng", "Giá vàng"),
        ("&#193;o dài", "Áo dài"),
        ("AT&amp;amp;T", "AT&T"),  # escaped twice by two export steps
        ("&amp;amp;amp;", "&amp;"),  # decoded at most twice
        ("a &lt; b", "a < b"),
        ("Tom & Jerry", "Tom & Jerry"),
    ],
)
def test_html_entities(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_zero_width_marks_inside_words_are_removed() -> None:
    assert clean_text("l\u200eý thuyết") == "lý thuyết"
    assert clean_text("\ufeffbáo\u200b chí\u2060\u200c\u200d\u200f") == "báo chí"


# Embeddings, overrides, isolates, and the three direction marks.
BIDI_CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"


def test_bidi_controls_are_removed() -> None:
    # An override makes "RTL \u202eexe.gpj" display as "RTL jpg.exe" on pages, feeds and widgets.
    assert clean_line("RTL \u202eexe.gpj\u202c") == "RTL exe.gpj"
    assert clean_text("\u2067بیت\u2069 Hà\u2066 Nội\u2069") == "بیت Hà Nội"
    for ch in BIDI_CONTROLS:
        assert clean_text(f"a{ch}b {ch}") == "ab", f"U+{ord(ch):04X} survived"
    # As entities too: decoded first, then removed.
    assert clean_text("x&#8238;y&#x2067;z") == "xyz"
    # Between a letter and its tone mark, like the zero-width marks: the mark still composes.
    assert clean_text("ly\u202e\u0301") == "lý"


def test_zero_width_mark_between_letter_and_tone_mark() -> None:
    # Removed before NFC, so the combining acute still composes with its "y".
    assert clean_text("ly\u200e\u0301 thuye\u0302\u0301t") == "lý thuyết"


def test_no_break_spaces_and_tabs_become_single_spaces() -> None:
    assert clean_text("10\u00a0000\u202fđồng\u2007và\tthuế") == "10 000 đồng và thuế"
    assert clean_text("hai  \u00a0 dấu\t\tcách") == "hai dấu cách"


def test_xml_illegal_characters_are_removed() -> None:
    assert clean_text("H2O \x14 Al(OH)3") == "H2O Al(OH)3"
    assert clean_text("a\x00b\x07c\x1fd\ufffee\uffff") == "abcde"
    assert clean_text("lone \ud800surrogate") == "lone surrogate"


def test_newlines_kept_lines_stripped_crlf_normalised() -> None:
    assert clean_text("  một  \r\n  hai\rba  \n") == "một\nhai\nba"


def test_entity_that_decodes_to_a_control_character_is_removed() -> None:
    assert clean_text("a&#8206;b &#x14;c") == "ab c"


def test_clean_line_puts_everything_on_one_line() -> None:
    assert clean_line(" Tiêu đề\n  hai dòng &#10;ba ") == "Tiêu đề hai dòng ba"


def test_clean_paragraphs_splits_on_blank_lines() -> None:
    text = "Đoạn một.\n\n\n  \nĐoạn\u00a0hai,\ndòng hai.\n&nbsp;\n\u200b\nĐoạn ba.\n\n"
    assert clean_paragraphs(text) == ["Đoạn một.", "Đoạn hai,\ndòng hai.", "Đoạn ba."]
    assert clean_paragraphs(" \n\n\u00a0") == []


def test_clean_text_is_idempotent_on_clean_text() -> None:
    once = clean_text("  Chi&amp;amp;ều  ngày\u00a026/6 l\u200eý\n\nthuyết\x14 ")
    assert clean_text(once) == once
