"""The DSLM's masks pinned through the model: perturb one input token, and exactly the outputs the paper's
masks allow change. A tiny DSLM also overfits a handful of sequences."""

from __future__ import annotations

import pytest
import torch

from songcorpus.models.dslm import SIZES, TASKS, Dslm, config_for, dslm_loss, parameter_count

STEPS, LYRICS, P = 8, 6, 3  # perturb position P of a stream of STEPS tokens


@pytest.fixture(scope="module")
def model() -> Dslm:
    torch.manual_seed(0)
    return Dslm(config_for("tiny", codes=32, lyrics_vocab=20)).eval()


def _inputs(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {"lyrics": torch.randint(20, (1, LYRICS), generator=generator),
            "lyrics_padding": torch.zeros(1, LYRICS, dtype=torch.bool),
            "vocals": torch.randint(32, (1, STEPS), generator=generator),
            "accompaniment": torch.randint(32, (1, STEPS), generator=generator)}


def _changed(model: Dslm, task: str, stream: str, position: int) -> dict[str, list[int]]:
    """Output positions of each stream whose logits change when input ``stream`` changes at ``position``."""
    inputs = _inputs(torch.Generator().manual_seed(1))
    other = {k: v.clone() for k, v in inputs.items()}
    other[stream][0, position] = (other[stream][0, position] + 1) % 20
    with torch.no_grad():
        a, b = model(masks=TASKS[task], **inputs), model(masks=TASKS[task], **other)
    return {name: [t for t in range(STEPS) if not torch.equal(getattr(a, name)[0, t], getattr(b, name)[0, t])]
            for name in ("vocals", "accompaniment", "song")}


ALL, FROM_P, NONE = list(range(STEPS)), list(range(P, STEPS)), list[int]()


@pytest.mark.parametrize(("task", "stream", "expected"), [
    # BR, both causal: each side sees the other up to its own step, so nothing before P changes
    ("lyrics_to_song", "vocals", {"vocals": FROM_P, "accompaniment": FROM_P}),
    ("lyrics_to_song", "accompaniment", {"vocals": FROM_P, "accompaniment": FROM_P}),
    # A2V, accompaniment given whole: vocals see all of it; the accompaniment never sees the vocals
    ("accompaniment_to_song", "accompaniment", {"vocals": ALL, "accompaniment": ALL}),
    ("accompaniment_to_song", "vocals", {"vocals": FROM_P, "accompaniment": NONE}),
    # V2A, the reverse
    ("vocals_to_song", "vocals", {"vocals": ALL, "accompaniment": ALL}),
    ("vocals_to_song", "accompaniment", {"vocals": NONE, "accompaniment": FROM_P}),
    # None: the streams do not see each other; "none" SA: a position sees only itself
    ("music_continuation", "vocals", {"vocals": [P], "accompaniment": NONE}),
    ("music_continuation", "accompaniment", {"vocals": NONE, "accompaniment": FROM_P}),
    ("vocals_editing", "accompaniment", {"vocals": NONE, "accompaniment": [P]}),
])
def test_a_position_sees_what_the_paper_says_and_nothing_else(model: Dslm, task: str, stream: str,
                                                               expected: dict[str, list[int]]) -> None:
    changed = _changed(model, task, stream, P)
    assert {k: changed[k] for k in expected} == expected
    # the song decoder is non-autoregressive over both streams: it follows any change at every step
    assert changed["song"] == (ALL if any(expected.values()) else NONE)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_output_depends_on_the_lyrics(model: Dslm, task: str) -> None:
    changed = _changed(model, task, "lyrics", 2)
    assert changed["vocals"] == changed["accompaniment"] == changed["song"] == ALL


def test_a_tiny_dslm_overfits_a_handful_of_sequences() -> None:
    torch.manual_seed(0)
    model = Dslm(config_for("tiny", codes=16, lyrics_vocab=20))
    generator = torch.Generator().manual_seed(2)
    batch = {"lyrics": torch.randint(20, (4, LYRICS), generator=generator),
             "lyrics_padding": torch.zeros(4, LYRICS, dtype=torch.bool)}
    vocals, accompaniment, song = (torch.randint(16, (4, STEPS + 1), generator=generator) for _ in range(3))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        out = model(vocals=vocals[:, :-1], accompaniment=accompaniment[:, :-1], masks=TASKS["lyrics_to_song"], **batch)
        loss = dslm_loss(out, {"vocals": vocals[:, 1:], "accompaniment": accompaniment[:, 1:], "song": song[:, 1:]})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    accuracy = (out.vocals.argmax(-1) == vocals[:, 1:]).float().mean().item()
    assert losses[-1] < losses[0] / 5 and accuracy > 0.9


def test_sizes() -> None:
    """The paper reports 631M. This layout counts 4 + 8 + 8 + 4 layers at d 1024 with 16384 codes; the rest of
    the gap is what the paper leaves unstated (its lyric vocabulary, prompt and song-token embeddings)."""
    counts = {size: parameter_count(config) for size, config in SIZES.items()}
    print({size: f"{n / 1e6:.1f}M" for size, n in counts.items()}, "paper: 631M")
    assert counts["tiny"] < 2e6 < counts["small"] < counts["paper"]
    assert 0.7 * 631e6 < counts["paper"] < 1.15 * 631e6


@pytest.mark.parametrize("task", ["lyrics_to_song", "accompaniment_to_song", "vocals_to_song", "music_continuation"])
def test_padding_and_mixed_tasks_leave_each_example_as_it_is_alone(model: Dslm, task: str) -> None:
    """A short example padded into a batch with a longer one of another task: its outputs at its own steps are
    those it gets alone (padded steps are hidden from every stream and from the song decoder)."""
    generator = torch.Generator().manual_seed(3)
    codes = model.config.codes
    lyrics = torch.randint(model.config.lyrics_vocab, (2, LYRICS), generator=generator)
    lyrics_padding = torch.zeros(2, LYRICS, dtype=torch.bool)
    vocals, accompaniment = (torch.randint(codes, (2, STEPS), generator=generator) for _ in range(2))
    short = STEPS - 3
    padding = torch.zeros(2, STEPS, dtype=torch.bool)
    padding[0, short:] = True
    pad = model.config.special("<pad>")
    vocals[0, short:], accompaniment[0, short:] = pad, pad
    with torch.no_grad():
        batch = model(lyrics, lyrics_padding, vocals, accompaniment, [TASKS[task], TASKS["vocals_editing"]], padding)
        alone = model(lyrics[:1], lyrics_padding[:1], vocals[:1, :short], accompaniment[:1, :short], TASKS[task])
    for name in ("vocals", "accompaniment", "song"):
        torch.testing.assert_close(getattr(batch, name)[0, :short], getattr(alone, name)[0], atol=1e-5, rtol=1e-5)
