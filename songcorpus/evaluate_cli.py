"""``songcorpus evaluate``: a DSLM's token metrics per task on a dataset version's held-out split, its sampled
tokens for the LDM, and a report (JSON + HTML) under ``ROOT/evaluations/``."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

EVALUATIONS = "evaluations"


def _load(storage: Any, ref: str) -> tuple[Any, Any, dict]:
    from .pipeline.errors import UserError
    from .pipeline.model_registry import local_folder, resolve_model
    from .training.dslm import load_dslm

    artifact = resolve_model(storage, ref)
    if artifact.kind != "dslm":
        raise UserError(f"{ref} is a {artifact.kind}; `songcorpus evaluate` judges DSLMs (kind dslm)")
    model, saved = load_dslm(local_folder(storage, artifact))
    return artifact, model, saved


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation.token_metrics import compare, sample_tokens, sections, token_metrics
    from .models.dslm.sampling import Sampling
    from .pipeline.dataset_reader import resolve_version, split_with_clips
    from .pipeline.errors import UserError
    from .pipeline.report_html import render_sections_html
    from .pipeline.storage import Storage
    from .stages.tokenize import npz_bytes
    from .training.dslm_data import load_examples

    storage = Storage(args.root)
    artifact, model, saved = _load(storage, args.model)
    embedder = _embedder(storage, args.fad_embedder, saved) if args.audio else None  # before any work: it may fail
    version_dir, manifest = resolve_version(args.version or artifact.lineage["dataset_version"], args.root)
    if (manifest.get("tokens") or {}).get("tokenizer") != saved["tokenizer"]:
        raise UserError(f"version {manifest['id']} was tokenized by {(manifest.get('tokens') or {}).get('tokenizer')}"
                        f", but dslm/{artifact.id} reads tokens of tokenizer {saved['tokenizer']}")
    wanted = args.split or str(artifact.config.get("eval_split", "test"))
    split = wanted if args.split else split_with_clips(manifest, wanted)
    if split != wanted:
        print(f"NOTE: version {manifest['id']} has no {wanted} clips; judging on {split}"
              + (" (clips the model was trained on)" if split == "train" else ""))
    examples = load_examples(version_dir, split, model.config)
    if not examples:
        raise UserError(f"version {manifest['id']} has no {split} clips with lyrics and tokens")
    metrics = token_metrics(model, examples)
    curves = {f"dslm/{artifact.id}": artifact.metrics.get("loss_curve", [])}
    result: dict[str, Any] = {"model": artifact.id, "version": manifest["id"], "split": split,
                              "clips": len(examples), "metrics": metrics,
                              "uniform_cross_entropy": round(math.log(model.config.codes), 4)}
    difference = None
    if args.against:
        other, other_model, _ = _load(storage, args.against)
        result["against"] = {"model": other.id, "metrics": token_metrics(other_model, examples)}
        difference = result["against"]["difference"] = compare(metrics, result["against"]["metrics"])
        curves[f"dslm/{other.id}"] = other.metrics.get("loss_curve", [])
    sampled = sample_tokens(model, examples[: args.generate], sampling=Sampling(args.top_k, args.temperature))
    folder = f"{EVALUATIONS}/{artifact.id}-{manifest['id']}-{split}"
    storage.write_bytes(f"{folder}/generated.npz", npz_bytes(sampled))
    lines = [f"dslm/{artifact.id} ({artifact.summary})",
             (f"version {manifest['id']}, split {split}: {len(examples)} clips; tokens sampled for "
              f"{min(args.generate, len(examples))} clips (lyrics-to-song, top-k {args.top_k}, temperature "
              f"{args.temperature}) in generated.npz"),
             (f"for scale: a uniform guess over the {model.config.codes} codes scores cross-entropy "
              f"{result['uniform_cross_entropy']} (perplexity {model.config.codes})")]
    audio_sections = (_audio_tables(args, storage, folder, artifact, model, saved, examples, version_dir, split,
                                    embedder, result) if embedder is not None else [])
    storage.write_bytes(f"{folder}/evaluation.json", json.dumps(result, indent=2, sort_keys=True).encode())
    page = render_sections_html(f"songcorpus evaluation · dslm/{artifact.id}", lines,
                                [*audio_sections, *sections(artifact.id, metrics, curves, difference, args.against)],
                                "songcorpus evaluate")
    storage.write_bytes(f"{folder}/report.html", page.encode())
    _print(result, difference)
    print(f"report: {storage.uri(folder)}/report.html")
    return 0


def _embedder(storage: Any, name: str, saved: dict) -> Any:
    from .evaluation.embedders import fad_embedder
    from .pipeline.model_registry import local_folder, resolve_model

    return fad_embedder(name, local_folder(storage, resolve_model(storage, f"tokenizer/{saved['tokenizer']}")))


def _audio_tables(args: argparse.Namespace, storage: Any, folder: str, artifact: Any, model: Any, saved: dict,
                  examples: list, version_dir: str, split: str, embedder: Any,
                  result: dict[str, Any]) -> list[dict[str, Any]]:
    """The paper-form audio tables (``evaluation.paper_tables``): into ``result["audio"]``, ``tables.md`` and
    the report's sections."""
    from .evaluation.paper_tables import AudioJudge, markdown, paper_tables, report_sections
    from .models.dslm.sampling import Sampling
    from .training.clip_audio import load_clip_audio
    from .training.ldm import load_decoder

    decoder, ldm = load_decoder(storage, args.ldm)
    if ldm.lineage.get("tokenizer") != saved["tokenizer"]:
        print(f"NOTE: ldm/{ldm.id} was trained on tokens of tokenizer {ldm.lineage.get('tokenizer')}, the DSLM "
              f"on tokens of {saved['tokenizer']}: the decoded audio will not mean much")
    audio = load_clip_audio(version_dir, split, decoder.sample_rate)
    models = {f"dslm/{artifact.id}": model}
    if args.against:
        other, other_model, _ = _load(storage, args.against)
        models[f"dslm/{other.id}"] = other_model
    clips = examples[: args.audio_clips]
    judge = AudioJudge(decoder, embedder, args.steps, args.guidance)
    tables = paper_tables(models, clips, lambda key, stream: audio[key][stream], judge, float(saved["token_rate"]),
                          seed=args.seed, sampling=Sampling(args.top_k, args.temperature))
    label = f"FAD[{embedder.name}]"
    result["audio"] = {"decoder": ldm.id, "fad": label, "clips": len(clips), "euler_steps": args.steps,
                       "guidance": args.guidance, "tables": tables}
    note = (f"Paper-form tables: dslm/{artifact.id} on {len(clips)} {split} clips of version {result['version']}, "
            f"decoded by ldm/{ldm.id} ({args.steps} Euler steps, guidance {args.guidance}); FAD by {label}. The "
            "ground-truth row decodes the true tokens with the same LDM and noise. Tiny models on a synthetic corpus "
            "give meaningless absolute numbers: compare rows and models.")
    storage.write_bytes(f"{folder}/tables.md", f"# {note}\n\n{markdown(tables, label)}".encode())
    print(note)
    print(markdown(tables, label))
    return [{"title": "Audio: the paper's tables", "lines": [note]}, *report_sections(tables, label)]


def _print(result: dict[str, Any], difference: dict[str, Any] | None) -> None:
    print(f"dslm/{result['model']} on version {result['version']} ({result['split']}, {result['clips']} clips; "
          f"a uniform guess scores CE {result['uniform_cross_entropy']})")
    header = f"  {'task':<28}{'stream':<15}{'tokens':>8}{'CE':>9}{'ppl':>10}{'acc':>8}"
    print(header + ("   ΔCE    Δacc" if difference else ""))
    for recipe, streams in result["metrics"].items():
        for stream, s in streams.items():
            line = (f"  {recipe:<28}{stream:<15}{s['tokens']:>8}{s['cross_entropy']:>9.3f}{s['perplexity']:>10.2f}"
                    f"{s['accuracy']:>8.3f}")
            if difference is not None:
                d = difference.get(recipe, {}).get(stream, {})
                line += f"{d.get('cross_entropy', float('nan')):>+7.3f}{d.get('accuracy', float('nan')):>+8.3f}"
            print(line)


def add_evaluate_parser(sub: Any) -> None:
    ev = sub.add_parser(
        "evaluate", help="token metrics of a DSLM per task on a version's held-out split",
        description="Judge a DSLM on a dataset version's held-out clips: per task of the training mix and per "
        "stream, cross-entropy, perplexity and top-1 accuracy (identical inputs for every model); sample "
        "lyrics-to-song tokens for the LDM; write evaluation.json, generated.npz and report.html (loss curves, "
        "the table) under ROOT/evaluations/.")
    ev.add_argument("model", help="DSLM artifact: ID, dslm/ID, an id prefix, or dslm/latest")
    ev.add_argument("--root", required=True, help="output root of the job")
    ev.add_argument("--version", help="dataset version (default: the one the model was trained on)")
    ev.add_argument("--split", help="split to judge on (default: the model's eval_split, test, or else the first "
                    "of valid, test, train that has clips)")
    ev.add_argument("--against", metavar="MODEL",
                    help="another DSLM: its metrics on the same inputs, and the difference")
    ev.add_argument("--generate", type=int, default=4, help="clips to sample tokens for (default: 4)")
    ev.add_argument("--top-k", type=int, default=50)
    ev.add_argument("--temperature", type=float, default=0.9)
    ev.add_argument("--audio", action="store_true",
                    help="also generate every task of the paper, decode it with --ldm and score it as the paper "
                    "does (FAD[own], MCD, SECS), with a ground-truth row: tables in evaluation.json, tables.md and "
                    "the report")
    ev.add_argument("--fad-embedder", choices=("own", "vggish"), default="own",
                    help="with --audio: FAD's embedder: own (a frozen layer of the version's tokenizer) or vggish "
                    "(torchaudio's VGGish; its weights must already be in the torch hub cache)")
    ev.add_argument("--ldm", default="ldm/latest", help="with --audio: the LDM that decodes (default: ldm/latest)")
    ev.add_argument("--audio-clips", type=int, default=8, help="with --audio: held-out clips per task (default: 8)")
    ev.add_argument("--steps", type=int, default=20, help="with --audio: the LDM's Euler steps (default: 20)")
    ev.add_argument("--guidance", type=float, default=2.0, help="with --audio: classifier-free guidance")
    ev.add_argument("--seed", type=int, default=0, help="with --audio: seed of the DSLM's sampling")
    ev.set_defaults(func=_cmd_evaluate)
