"""The lyrics tokenizer: characters. A line break separates lyric lines; ``<mask>`` hides a character in
training (SongCreator masks 20 % of the lyrics). Characters need no external tool (espeak-ng phonemes would be
the other choice); bump ``LYRICS_TOKENIZER_VERSION`` whenever the vocabulary changes, since a DSLM's weights
mean nothing with another one."""

from __future__ import annotations

LYRICS_TOKENIZER_VERSION = 1
SPECIALS = ("<pad>", "<unk>", "<mask>")
CHARACTERS = "\n abcdefghijklmnopqrstuvwxyzáàâäãåæçéèêëíìîïñóòôöõøœúùûüýÿß0123456789'’,.!?;:-()\"&"
VOCABULARY: tuple[str, ...] = (*SPECIALS, *CHARACTERS)
_IDS = {token: i for i, token in enumerate(VOCABULARY)}
PAD, UNK, MASK = (_IDS[s] for s in SPECIALS)


def encode_lyrics(text: str) -> list[int]:
    """Token ids of ``text``, lowercased; characters outside the vocabulary become ``<unk>``."""
    return [_IDS.get(character, UNK) for character in text.lower()]


def decode_lyrics(ids: list[int]) -> str:
    """The text of ``ids``; special tokens are left out, except ``<unk>``, shown as U+FFFD."""
    return "".join("\ufffd" if i == UNK else VOCABULARY[i] for i in ids if i not in (PAD, MASK))
