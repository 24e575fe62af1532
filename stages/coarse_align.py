"""Where each lyric line lies in a song, from the known text alone (no LRC timestamps).

The vocals are run through the CTC model in fixed chunks (bounded memory whatever the song
length), the per-frame log-probabilities are concatenated, and the whole lyric text is force-aligned
to them at once (Viterbi, ``torchaudio.functional.forced_align``). Each line's first and last
character give its window; WhisperX then aligns words inside each window.
"""

from __future__ import annotations

import warnings

import torch
import torchaudio.functional as taf

SAMPLE_RATE = 16000


def emissions(model: torch.nn.Module, audio: torch.Tensor, chunk_seconds: float, device: torch.device) -> torch.Tensor:
    """Log-probabilities ``(frames, vocab)`` of mono 16 kHz ``audio``, computed chunk by chunk."""
    chunk = max(int(chunk_seconds * SAMPLE_RATE), 400)
    parts = []
    with torch.inference_mode():
        for start in range(0, audio.shape[-1], chunk):
            piece = audio[start : start + chunk]
            if piece.shape[-1] < 400:  # wav2vec2's minimum input
                piece = torch.nn.functional.pad(piece, (0, 400 - piece.shape[-1]))
            logits = model(piece[None].to(device)).logits[0]
            parts.append(torch.log_softmax(logits.float(), dim=-1).cpu())
    return torch.cat(parts)


def line_tokens(text: str, dictionary: dict[str, int]) -> list[int]:
    """Token ids of one line: lower-case characters the model knows, spaces as ``|``."""
    ids: list[int] = []
    for raw in text.lower().strip():
        char = "|" if raw.isspace() else raw
        if char in dictionary and not (char == "|" and ids and ids[-1] == dictionary["|"]):
            ids.append(dictionary[char])
    return ids


def line_windows(
    lines: list[str], log_probs: torch.Tensor, dictionary: dict[str, int], seconds: float, blank: int = 0
) -> list[tuple[float, float] | None]:
    """(start, end) seconds of each line in a song of ``seconds``; None for a line with no known character."""
    separator = dictionary.get("|")
    tokens: list[int] = []
    spans: list[tuple[int, int] | None] = []
    for text in lines:
        ids = line_tokens(text, dictionary)
        if not ids:
            spans.append(None)
            continue
        if tokens and separator is not None:
            tokens.append(separator)
        spans.append((len(tokens), len(tokens) + len(ids)))
        tokens.extend(ids)
    if not tokens:
        return [None] * len(lines)
    if len(tokens) > log_probs.shape[0]:
        raise ValueError(f"{len(tokens)} characters cannot fit {log_probs.shape[0]} frames of audio")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchaudio 2.8 announces forced_align's move to TorchCodec
        path, _ = taf.forced_align(log_probs[None], torch.tensor([tokens], dtype=torch.int32), blank=blank)
    frames = path[0]
    # frame index where each target token is emitted: walk the path, counting non-blank token changes
    token_frames: list[list[int]] = [[] for _ in tokens]
    position, previous = -1, blank
    for frame, token in enumerate(frames.tolist()):
        if token != blank and (token != previous or position < 0):
            position += 1
        if token != blank and position < len(tokens):
            token_frames[position].append(frame)
        previous = token
    per_frame = seconds / log_probs.shape[0]
    windows: list[tuple[float, float] | None] = []
    for span in spans:
        if span is None:
            windows.append(None)
            continue
        first, last = token_frames[span[0]], token_frames[span[1] - 1]
        if not first or not last:
            windows.append(None)
            continue
        windows.append((first[0] * per_frame, (last[-1] + 1) * per_frame))
    return windows
