"""DSLM sizes and settings; every number is a field. Semantic token ids are ``0 .. codes-1``; the special tokens
follow them (``SPECIAL_TOKENS``), so the decoders' vocabulary is ``codes + 5``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..saved_config import SavedConfig, sized

#: after the semantic codes: padding, stream start, stream end, the editing separator, a masked (hidden) token
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<EDIT>", "<mask>")


@dataclass(frozen=True)
class DslmConfig(SavedConfig):
    codes: int = 1024  # semantic tokens of the tokenizer (K)
    lyrics_vocab: int = 128  # lyric tokens (characters or phonemes) of the lyrics tokenizer
    d_model: int = 1024
    heads: int = 16
    ffn: int = 4096
    lyrics_layers: int = 4
    decoder_layers: int = 8  # each of the vocals and accompaniment decoders
    song_layers: int = 4
    dropout: float = 0.1
    max_lyrics: int = 256  # SongCreator: at most 256 lyric tokens
    max_tokens: int = 1500  # and 1500 semantic tokens (30 s at 50 Hz) per stream

    @property
    def vocab(self) -> int:
        return self.codes + len(SPECIAL_TOKENS)

    def special(self, name: str) -> int:
        """The id of a special token, e.g. ``special("<EDIT>")``."""
        return self.codes + SPECIAL_TOKENS.index(name)


#: SongCreator's size (4 + 8 + 8 + 4 layers at d 1024, 16 heads, FFN 4096; 631M in the paper), one for a GPU,
#: and one for CPU tests
SIZES = {
    "tiny": DslmConfig(d_model=64, heads=4, ffn=128, lyrics_layers=1, decoder_layers=2, song_layers=1, dropout=0.0),
    "small": DslmConfig(d_model=512, heads=8, ffn=2048, lyrics_layers=4, decoder_layers=8, song_layers=4),
    "paper": DslmConfig(codes=16384),  # the paper's semantic tokens: a learned VQ of 16384 codes
}


def config_for(size: str, **overrides: Any) -> DslmConfig:
    return sized(SIZES, "DSLM", size, **overrides)
