"""Decoding throughput: ``TokenDecoder`` (tokens -> LDM sampling -> VAE decode) against the bare forward passes of
the same networks on the same inputs, in one run.

Both sides use the same untrained networks of the chosen size (compute, not quality, is measured), the same token
sequences (``--clips`` clips of ``--seconds``), the same Euler steps and guidance, device, precision and threads.

  - reference: the LDM's forward called exactly as often as the sampler calls it (twice per step with guidance)
    on tensors already batched on the device, then the VAE's decoder on latents already there, one clip at a
    time as the decoder does it (on a CPU that is also faster than one batched call);
  - decoder: ``TokenDecoder.decode`` on the token arrays, which also pads, draws the noise per sequence, batches,
    and cuts and copies each waveform back.

Prints each side's real-time factor (seconds of audio made per second) and the ratio decoder / reference (the
decoder's own overhead; 1.0 is none), for the diffusion sampling and the VAE decode apart and together.

    .venv/bin/python bench/bench_ldm.py [--size tiny] [--clips 8] [--seconds 10] [--steps 20] [--threads 2]
        [--repeats 7]
    .venv/bin/python bench/bench_ldm.py --device cuda --precision bf16 --size small --clips 32
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from songcorpus.models.ldm import Ldm, TokenDecoder, Vae
from songcorpus.models.ldm.diffusion import config_for as ldm_config_for
from songcorpus.models.ldm.vae import config_for as vae_config_for

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def timed(runs: dict[str, Callable[[], object]], device: torch.device, repeats: int) -> dict[str, float]:
    """Median seconds of each run over ``repeats`` rounds after one warm-up each. Every round runs them all in
    turn, so a machine that drifts (a shared CPU varies by ±30 % here) slows every side alike."""
    for run in runs.values():
        run()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "small"], default="tiny")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("--codes", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--repeats", type=int, default=7, help="rounds timed (the median is reported)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    vae, ldm = Vae(vae_config_for(args.size)).to(device).eval(), Ldm(ldm_config_for(args.size, codes=args.codes))
    ldm = ldm.to(device).eval()
    decoder = TokenDecoder(vae, ldm)
    frames = round(args.seconds * ldm.config.token_rate)
    sequences = [np.random.default_rng(i).integers(0, args.codes, frames) for i in range(args.clips)]
    audio_seconds = args.clips * frames * vae.config.hop / vae.config.sample_rate
    tokens = torch.as_tensor(np.stack(sequences), device=device)
    noisy = torch.randn(args.clips, frames, ldm.config.latent, device=device)
    latents = torch.randn(args.clips, ldm.config.latent, frames, device=device)
    t = torch.full((args.clips,), 0.5, device=device)
    calls = args.steps * (2 if args.guidance not in (0.0, 1.0) else 1)

    @contextlib.contextmanager
    def precision() -> Iterator[None]:
        dtype = AUTOCAST.get(args.precision)
        with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            yield

    def bare_sampling() -> None:
        with precision():
            for _ in range(calls):
                ldm(noisy, t, tokens)

    def bare_vae() -> None:
        with precision():
            for row in range(args.clips):  # one clip at a time, as the decoder must (see TokenDecoder.decode)
                vae.decode(latents[row : row + 1])

    def decoder_run() -> None:
        with precision():
            decoder.decode(sequences, args.steps, args.guidance, batch_size=args.clips)

    reference = timed({"sampling": bare_sampling, "vae": bare_vae, "decoder": decoder_run}, device, args.repeats)
    whole = reference.pop("decoder")
    reference_whole = reference["sampling"] + reference["vae"]
    print(f"{args.clips} clips x {args.seconds:.0f} s ({audio_seconds:.0f} s of audio); LDM and VAE {args.size}, "
          f"{args.steps} Euler steps, guidance {args.guidance} ({calls} LDM forwards); device {args.device}, "
          f"precision {args.precision}, threads {args.threads}")
    for name, seconds in reference.items():
        print(f"reference  bare {name:<9} real-time factor {audio_seconds / seconds:9.1f}")
    print(f"reference  bare total     real-time factor {audio_seconds / reference_whole:9.1f}")
    print(f"decoder    TokenDecoder   real-time factor {audio_seconds / whole:9.1f}")
    print(f"ratio      decoder / reference        {reference_whole / whole:8.2f}")


if __name__ == "__main__":
    main()
