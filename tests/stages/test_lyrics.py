"""Lyrics parsing: plain text and real-world LRC (variants, markers, labels, CJK) and hostile inputs."""

import time

import pytest

from songcorpus.schemas.lyrics import LyricsError, LyricWord
from songcorpus.stages.lyrics import MAX_INPUT_LINES, parse_lyrics, split_words


def starts(parsed) -> list[float | None]:
    return [line.start for line in parsed.lines]


def texts(parsed) -> list[str]:
    return [line.text for line in parsed.lines]


def raises(text: str, reason: str, **kwargs) -> LyricsError:
    with pytest.raises(LyricsError) as info:
        parse_lyrics(text, **kwargs)
    assert info.value.reason == reason, info.value
    return info.value


# --- LRC timestamps ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "seconds"),
    [
        ("[00:12]", 12.0),
        ("[00:12.5]", 12.5),
        ("[00:12.34]", 12.34),
        ("[00:12.345]", 12.345),
        ("[00:12:34]", 12.34),  # colon before the centiseconds
        ("[01:02.03]", 62.03),
        ("[75:00.00]", 4500.0),  # minutes past 59
        ("[ 00:12.34 ]", 12.34),
    ],
)
def test_timestamp_variants(stamp: str, seconds: float):
    parsed = parse_lyrics(f"{stamp}hello world")
    assert parsed.format == "lrc"
    assert parsed.lines[0].start == pytest.approx(seconds, abs=1e-6)
    assert parsed.lines[0].text == "hello world"


def test_metadata_tags_lowercased_and_not_lines():
    lrc = "[ar:Some Artist]\n[TI: A Song ]\n[al:Album]\n[by:me]\n[length: 03:45]\n[00:01.00]la la"
    parsed = parse_lyrics(lrc)
    assert parsed.tags == {"ar": "Some Artist", "ti": "A Song", "al": "Album", "by": "me", "length": "03:45"}
    assert texts(parsed) == ["la la"]
    assert parsed.lines[0].source_line == 6


def test_several_timestamps_repeat_the_line_at_each_time():
    parsed = parse_lyrics("[00:12.00][01:05.50]chorus line\n[00:20.00]verse line\n[01:10.00]last")
    assert texts(parsed) == ["chorus line", "verse line", "chorus line", "last"]
    assert starts(parsed) == pytest.approx([12.0, 20.0, 65.5, 70.0], abs=1e-6)
    assert [line.end for line in parsed.lines] == pytest.approx([20.0, 65.5, 70.0, None], abs=1e-6)
    assert [line.source_line for line in parsed.lines] == [1, 2, 1, 3]
    assert parsed.notes == ()  # compressed LRC is not "out of order"


def test_end_is_next_entry_and_last_line_end_unknown():
    parsed = parse_lyrics("[00:01.00]one\n[00:02.50]two")
    assert [(line.start, line.end) for line in parsed.lines] == [(1.0, 2.5), (2.5, None)]


@pytest.mark.parametrize(("tag", "shift"), [("+250", -0.25), ("-500", 0.5), ("250", -0.25), ("0", 0.0)])
def test_offset_positive_shows_lyrics_earlier(tag: str, shift: float):
    parsed = parse_lyrics(f"[offset:{tag}]\n[00:10.00]<00:10.00>a <00:10.50>b\n[00:12.00]c")
    assert parsed.offset_seconds == pytest.approx(-shift, abs=1e-6)
    assert starts(parsed) == pytest.approx([10.0 + shift, 12.0 + shift], abs=1e-6)
    assert parsed.lines[0].end == pytest.approx(12.0 + shift, abs=1e-6)
    assert [w.start for w in parsed.lines[0].words] == pytest.approx([10.0 + shift, 10.5 + shift], abs=1e-6)


def test_offset_clamps_at_zero_with_a_note():
    parsed = parse_lyrics("[offset:+1000]\n[00:00.50]early\n[00:03.00]later")
    assert starts(parsed) == pytest.approx([0.0, 2.0], abs=1e-6)
    assert any("set to 0" in note for note in parsed.notes)


def test_bad_offset_names_its_line():
    error = raises("[ar:x]\n[offset:soon]\n[00:01.00]a", "lrc_bad_offset")
    assert error.line == 2


def test_enhanced_word_stamps():
    parsed = parse_lyrics("[00:12.00]<00:12.00>Hello <00:12.50>big <00:13.25>world<00:14.00>")
    line = parsed.lines[0]
    assert line.text == "Hello big world"
    assert line.words == (LyricWord("Hello", 12.0), LyricWord("big", 12.5), LyricWord("world", 13.25))


def test_enhanced_stamp_times_only_the_next_word():
    line = parse_lyrics("[00:01.00]lead <00:02.00>two words").lines[0]
    assert line.words == (LyricWord("lead"), LyricWord("two", 2.0), LyricWord("words"))


def test_enhanced_cjk_words():
    line = parse_lyrics("[00:01.00]<00:01.00>你<00:01.40>好<00:01.80>吗", language="zh").lines[0]
    assert line.text == "你好吗"
    assert [(w.text, w.start) for w in line.words] == [("你", 1.0), ("好", 1.4), ("吗", 1.8)]


# --- markers, labels, repeats -------------------------------------------------------------------


@pytest.mark.parametrize("marker", ["", "   ", "♪", "♪ ♫", "(instrumental)", "[Instrumental]", "Instrumental",
                                    "(Guitar Solo)", "(间奏)", "（间奏）", "【副歌】", "[Chorus]"])
def test_blank_and_instrumental_markers_end_the_previous_line(marker: str):
    parsed = parse_lyrics(f"[00:01.00]sung line\n[00:04.00]{marker}\n[00:30.00]next line")
    assert texts(parsed) == ["sung line", "next line"]
    assert parsed.lines[0].end == pytest.approx(4.0, abs=1e-6)
    assert parsed.lines[1].end is None


def test_section_labels_and_repeat_marks_removed_from_plain_text():
    text = "[Verse 1]\nfirst line\nChorus:\nsing it (x2)\nsing again x3\n(Chorus)\nVerse 2\n[Bridge: Guest]\nlast"
    parsed = parse_lyrics(text)
    assert parsed.format == "text"
    assert texts(parsed) == ["first line", "sing it", "sing again", "last"]
    assert [line.source_line for line in parsed.lines] == [2, 4, 5, 9]
    assert all(line.start is None and line.end is None for line in parsed.lines)
    assert any("repeat marks" in note for note in parsed.notes)


@pytest.mark.parametrize("sung", ["Music", "Bridge over the water", "(Music is my life)", "Break it down",
                                  "(ooh, ooh)", "Drop"])
def test_sung_lines_that_merely_resemble_labels_are_kept(sung: str):
    assert texts(parse_lyrics(f"{sung}\nnext")) == [sung, "next"]


def test_genius_style_label_with_colon_is_not_metadata():
    parsed = parse_lyrics("[Chorus: Beyoncé]\n[Bridge: Someone]\nhello")
    assert parsed.tags == {}
    assert texts(parsed) == ["hello"]


def test_credit_lines_are_not_sung():
    parsed = parse_lyrics("[00:00.00]作词 : 周杰伦\n[00:01.00]作曲：周杰伦\n[00:20.00]窗外的麻雀")
    assert texts(parsed) == ["窗外的麻雀"]
    assert any("credit" in note for note in parsed.notes)


# --- words ----------------------------------------------------------------------------------------


def test_split_words_whitespace_languages():
    assert split_words("Don't stop - believin'", "en") == ("Don't", "stop", "believin'")


@pytest.mark.parametrize("language", ["zh", "ja", "zh-CN", "ja_JP", None])
def test_split_words_cjk_one_word_per_character(language: str | None):
    assert split_words("我爱你，中国", language) == ("我", "爱", "你", "中", "国")


def test_split_words_mixed_cjk_keeps_latin_words_whole():
    assert split_words("我爱你 baby，ありがとー", "zh") == ("我", "爱", "你", "baby", "あ", "り", "が", "とー")


def test_split_words_thai_keeps_marks_on_their_consonant():
    assert split_words("รัก", "th") == ("รั", "ก")


def test_mostly_latin_text_with_some_cjk_splits_on_spaces():
    assert split_words("hello there my friend 你好", None) == ("hello", "there", "my", "friend", "你好")


def test_plain_cjk_lines_get_character_words():
    parsed = parse_lyrics("窗外的麻雀\n在电线杆上多嘴")
    assert [w.text for w in parsed.lines[0].words] == list("窗外的麻雀")
    assert parsed.lines[1].words[0] == LyricWord("在")


# --- encodings and layout -----------------------------------------------------------------------


def test_bom_and_crlf_tolerated():
    parsed = parse_lyrics("\ufeff[ti:x]\r\n[00:01.00]one\r\n\r\n[00:02.00]two\r\n")
    assert texts(parsed) == ["one", "two"]
    assert parsed.tags == {"ti": "x"}
    assert [line.source_line for line in parsed.lines] == [2, 4]


def test_plain_text_one_line_per_nonempty_line():
    parsed = parse_lyrics("  first line \n\n\tsecond   line\n")
    assert parsed.format == "text"
    assert texts(parsed) == ["first line", "second line"]
    assert parsed.lines[1].words == (LyricWord("second"), LyricWord("line"))
    assert parsed.offset_seconds == 0.0


def test_untimed_lines_in_lrc_continue_the_timed_line_before_them():
    parsed = parse_lyrics("Song Title - Artist\n[00:01.00]one\nand more\n[00:05.00]two")
    assert texts(parsed) == ["one and more", "two"]
    assert [w.text for w in parsed.lines[0].words] == ["one", "and", "more"]
    assert any("header" in note for note in parsed.notes)
    assert any("appended" in note for note in parsed.notes)


def test_untimed_line_after_a_marker_makes_it_a_line():
    parsed = parse_lyrics("[00:01.00]one\n[00:04.00][Chorus]\nsung after the label\n[00:09.00]two")
    assert [(line.text, line.start, line.end) for line in parsed.lines] == [
        ("one", 1.0, 4.0), ("sung after the label", 4.0, 9.0), ("two", 9.0, None)]


def test_untimed_continuations_cannot_grow_a_line_past_the_limit():
    # "start" + 31 x " more words here" = 501 characters, reached on input line 32
    assert raises("[00:01.00]start\n" + "more words here\n" * 40, "lyrics_line_too_long").line == 32


def test_word_stamps_move_with_each_repeat_of_a_line():
    parsed = parse_lyrics("[00:10.00][01:00.00]<00:10.00>la <00:10.50>di\n[00:20.00]x")
    assert [w.start for w in parsed.lines[0].words] == pytest.approx([10.0, 10.5], abs=1e-6)
    assert [w.start for w in parsed.lines[2].words] == pytest.approx([60.0, 60.5], abs=1e-6)


def test_same_time_translation_lines_keep_the_first():
    parsed = parse_lyrics("[00:01.00]愛してる\n[00:01.00]I love you\n[00:03.00]またね\n[00:03.00]See you")
    assert texts(parsed) == ["愛してる", "またね"]
    assert any("same time" in note for note in parsed.notes)


# --- hostile inputs -----------------------------------------------------------------------------


def test_out_of_order_timestamps_are_sorted_with_a_note():
    parsed = parse_lyrics("[00:30.00]third\n[00:10.00]first\n[00:20.00]second")
    assert texts(parsed) == ["first", "second", "third"]
    assert starts(parsed) == pytest.approx([10.0, 20.0, 30.0], abs=1e-6)
    assert [line.end for line in parsed.lines] == pytest.approx([20.0, 30.0, None], abs=1e-6)
    assert "2 lines were out of time order and were sorted" in parsed.notes


@pytest.mark.parametrize("stamp", ["[0a:12.00]", "[12:75.00]", "[1:]", "[00:12.0000]", "[00:12.x]"])
def test_malformed_timestamp_names_the_line(stamp: str):
    error = raises(f"[ti:x]\n[00:01.00]ok\n{stamp}broken", "lrc_bad_timestamp")
    assert error.line == 3
    assert "line 3" in str(error) and stamp.strip("[]") in error.message


def test_malformed_word_stamp_names_the_line():
    assert raises("[00:01.00]a\n[00:02.00]<00:99.00>b", "lrc_bad_timestamp").line == 2


def test_times_beyond_the_audio_name_the_line():
    lrc = "[00:01.00]a\n[00:50.00]b\n[03:10.00]too late\n[04:00.00]later"
    error = raises(lrc, "lrc_time_beyond_audio", duration=120.0)
    assert error.line == 3
    parse_lyrics("[00:01.00]a\n[02:00.90]within slack", duration=120.0)


def test_word_stamp_beyond_the_audio_is_caught():
    assert raises("[00:01.00]a\n[00:05.00]b <09:00.00>c", "lrc_time_beyond_audio", duration=60.0).line == 2


@pytest.mark.parametrize("text", ["", "\n\n  \n", "[ar:x]\n[ti:y]\n", "[Chorus]\n(x2)\n♪\n",
                                  "[00:01.00]\n[00:02.00]♪\n[00:03.00][Instrumental]"])
def test_nothing_sung_is_an_error(text: str):
    error = raises(text, "lyrics_no_lines")
    assert error.line is None


def test_line_too_long_names_the_line():
    assert raises("ok\n" + "la " * 200, "lyrics_line_too_long").line == 2


def test_binary_junk_is_rejected_but_a_stray_control_character_is_removed():
    junk = "la la\n" + "".join(chr(i % 32) for i in range(3000))
    assert raises(junk, "lyrics_binary").line == 2
    parsed = parse_lyrics("la\x07 la\n" + "sung words here\n" * 20)
    assert parsed.lines[0].text == "la la"
    assert "1 control characters were removed" in parsed.notes


# CPU time, not wall time: the budget is about the parser's cost, not about a busy CI machine.


def test_ten_megabytes_of_lrc_parse_in_linear_time():
    body = ("some words to sing here tonight, my love, " * 12)[:495]  # ~500-character lines
    lines = [f"[{i // 6000:02d}:{i // 100 % 60:02d}.{i % 100:02d}]{body}" for i in range(MAX_INPUT_LINES)]
    text = "\n".join(lines)
    assert len(text) >= 10_000_000
    started = time.process_time()
    parsed = parse_lyrics(text)
    assert time.process_time() - started < 5.0
    assert len(parsed.lines) == MAX_INPUT_LINES


@pytest.mark.parametrize(
    ("junk", "reason"),
    [
        ("a" * 10_000_000, "lyrics_line_too_long"),
        ("[" + "1:" * 5_000_000 + "]", "lyrics_line_too_long"),
        ("[00:01.00]" + "<1:" * 3_300_000, "lyrics_line_too_long"),
        ("[" * 10_000_000, "lyrics_line_too_long"),
        ("\x01a" * 5_000_000, "lyrics_binary"),
        ("[00:01.00]\n" * 1_000_000, "lyrics_too_many_lines"),
        ("\n" * 10_000_000, "lyrics_too_many_lines"),
        ("[00:01.00]" * 1_000_000 + "la", "lyrics_line_too_long"),
        (("[00:01.00]" * 400 + "la\n") * 100, "lyrics_too_many_lines"),
        ("[" + "1:" * 2_400 + "]la", "lrc_bad_timestamp"),  # quadratic with a naive timestamp pattern
    ],
)
def test_hostile_inputs_fail_fast(junk: str, reason: str):
    started = time.process_time()
    raises(junk, reason)
    assert time.process_time() - started < 5.0
