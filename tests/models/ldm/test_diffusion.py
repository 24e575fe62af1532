import numpy as np
import pytest
import torch

from songcorpus.models.bestrq.config import BestRqConfig
from songcorpus.models.dslm.config import DslmConfig
from songcorpus.models.ldm import Ldm, LdmConfig, TokenDecoder, Vae
from songcorpus.models.ldm.diffusion import config_for, flow_loss
from songcorpus.models.ldm.vae import VaeConfig
from songcorpus.models.ldm.vae import config_for as vae_config_for


@pytest.mark.parametrize("config", [LdmConfig(), VaeConfig(), DslmConfig(), BestRqConfig()])
def test_every_model_config_survives_its_json_round_trip(config):
    import json

    assert type(config).from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="missing keys"):
        type(config).from_dict({k: v for k, v in config.to_dict().items() if k != "heads"} | {"x": 1})


def test_unknown_sizes_and_fields_are_named():
    with pytest.raises(ValueError, match="unknown LDM size 'huge'"):
        config_for("huge")
    with pytest.raises(ValueError, match=r"unknown LdmConfig fields \['width'\]"):
        config_for("tiny", width=3)


def test_padding_frames_change_nothing_on_the_real_frames():
    torch.manual_seed(0)
    model = Ldm(config_for("tiny", codes=16)).eval()
    for p in model.parameters():  # the zero-initialised gates would hide attention entirely
        torch.nn.init.normal_(p, std=0.2)
    tokens, noisy, t = torch.randint(16, (1, 20)), torch.randn(1, 20, 32), torch.tensor([0.3])
    alone = model(noisy, t, tokens)
    padded = model(torch.cat([noisy, torch.randn(1, 7, 32)], 1), t, torch.cat([tokens, torch.randint(16, (1, 7))], 1),
                   torch.arange(27)[None] >= 20)
    torch.testing.assert_close(padded[:, :20], alone, atol=1e-5, rtol=1e-5)


def _toy_latents(tokens: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Latents that are a fixed function of the tokens: what the LDM must learn to read from its condition."""
    return table[tokens]


def test_a_tiny_ldm_learns_to_follow_its_tokens_and_guidance_helps():
    torch.manual_seed(0)
    codes, frames = 8, 24
    table = 2 * torch.randn(codes, 32)
    model = Ldm(config_for("tiny", codes=codes, condition_dropout=0.1))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(1)
    padding = torch.zeros(16, frames, dtype=torch.bool)
    for _ in range(300):
        tokens = torch.randint(codes, (16, frames), generator=generator)
        inputs = model.training_inputs(_toy_latents(tokens, table), tokens, generator)
        loss = flow_loss(model(inputs.noisy, inputs.t, inputs.tokens, padding), inputs.velocity, padding)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    tokens = torch.randint(codes, (8, frames), generator=generator)
    noise = torch.randn(8, frames, 32, generator=generator)
    truth = _toy_latents(tokens, table)
    error = {g: float((model.sample(tokens, noise, steps=10, guidance=g) - truth).pow(2).mean()) for g in (0, 1, 2)}
    spread = float(truth.var())
    assert error[1] < 0.15 * spread, error  # conditioned samples land on their tokens' latents
    assert error[0] > 0.8 * spread, error  # without the condition the model can only guess the average
    assert error[2] < error[0], error


def test_decoding_a_sequence_does_not_depend_on_its_batch():
    torch.manual_seed(0)
    decoder = TokenDecoder(Vae(vae_config_for("tiny")), Ldm(config_for("tiny", codes=16)))
    sequences = [np.arange(10) % 16, np.arange(23) % 16, np.arange(4) % 16]
    together = decoder.decode(sequences, steps=3, batch_size=3)
    apart = decoder.decode(sequences, steps=3, batch_size=1)
    assert [a.numel() for a in together] == [10 * 480, 23 * 480, 4 * 480]
    for a, b in zip(together, apart, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="16-d latents"):
        TokenDecoder(Vae(vae_config_for("tiny")), Ldm(config_for("tiny", codes=16, latent=16)))
