"""The character lyrics tokenizer: round trip, unknown characters, the version constant."""

from songcorpus.models.dslm.config import DslmConfig
from songcorpus.models.dslm.lyrics import LYRICS_TOKENIZER_VERSION, UNK, VOCABULARY, decode_lyrics, encode_lyrics


def test_round_trip_of_lines_in_three_languages() -> None:
    text = "fly blue and dream\nel corazón, mañana\nüber die straße!"
    assert decode_lyrics(encode_lyrics(text)) == text


def test_unknown_characters_and_case() -> None:
    ids = encode_lyrics("Hi ☃")
    assert ids[-1] == UNK and decode_lyrics(ids) == "hi \ufffd"


def test_the_default_dslm_vocabulary_holds_the_lyrics_tokenizer() -> None:
    assert LYRICS_TOKENIZER_VERSION == 1 and len(VOCABULARY) <= DslmConfig().lyrics_vocab
