"""``songcorpus models``: list, show and compare model artifacts; build the offline models."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pipeline.storage import Storage


def _storage(args: argparse.Namespace) -> Storage:
    from .pipeline.storage import Storage

    return Storage(args.root)


def _cmd_list(args: argparse.Namespace) -> int:
    from .pipeline.model_registry import list_models

    found = list_models(_storage(args), args.kind)
    if not found:
        print(f"no models under {args.root}/models")
    for a in found:
        print(f"{a.kind:<10} {a.id}  {a.name:<16} {a.created}  {a.summary}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from .pipeline.model_registry import artifact_dir, resolve_model

    storage = _storage(args)
    artifact = resolve_model(storage, args.model)
    print(f"{artifact.kind}/{artifact.id}  {artifact.name}\n{artifact.summary}\n")
    print(f"folder: {storage.uri(artifact_dir(artifact.kind, artifact.id))}")
    print(json.dumps(artifact.model_dump(mode="json", exclude={"summary"}), indent=2))
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from .pipeline.model_registry import resolve_model
    from .training.artifacts import diff_models

    storage = _storage(args)
    a, b = resolve_model(storage, args.model), resolve_model(storage, args.other)
    changes = diff_models(a, b)
    print(f"{a.kind}/{a.id} -> {b.kind}/{b.id}")
    if not changes:
        print("identical")
    for section, keys in changes.items():
        for key, (left, right) in keys.items():
            print(f"{section}.{key}: {left!r} -> {right!r}")
    return 0


def _cmd_smoke(args: argparse.Namespace) -> int:
    from .stages.demucs_models import SMOKE_MODEL, build_smoke_repo

    repo = build_smoke_repo(args.out / "demucs", SMOKE_MODEL, seed=args.seed)
    print(f"Demucs smoke model {SMOKE_MODEL!r} in {repo}")
    print(f'use it with: [stages.separate] model = "{SMOKE_MODEL}" repo = "{repo}"')
    return 0


def _cmd_train_small(args: argparse.Namespace) -> int:
    from .small_models import train_small_models
    from .training.small_aligner import AlignerRecipe
    from .training.small_separator import SeparatorRecipe

    separator, aligner = SeparatorRecipe(seed=args.seed), AlignerRecipe(seed=args.seed)
    if args.steps is not None:
        separator = dataclasses.replace(separator, steps=args.steps)
        aligner = dataclasses.replace(aligner, steps=args.steps)
    trained = train_small_models(args.root, separator, aligner)
    for artifact in (trained.separator, trained.aligner):
        print(f"{artifact.kind}/{artifact.id}  {artifact.summary}")
    folder = args.root / "models"
    print("\nuse them in a job:\n[stages.separate]\n"
          f'model = "{trained.separator.name}"\nrepo = "{folder / "separator" / trained.separator.id / "demucs"}"\n'
          "[stages.align]\nmodels = { " + ", ".join(
              f'{lang} = "{folder / "aligner" / trained.aligner.id / "wav2vec2"}"' for lang in ("en", "es", "de"))
          + " }")
    return 0


def add_models_parser(sub: argparse._SubParsersAction) -> None:
    from .schemas.model_artifact import MODEL_KINDS

    models = sub.add_parser("models", help="model artifacts: list, show, diff; offline models",
                            description="Immutable model artifacts under ROOT/models/<kind>/<id>/ (tokenizers, "
                            "DSLMs, LDMs, the small separator and aligner), and models for offline runs.")
    models_sub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    for action, text, refs, func in (
        ("list", "every model under ROOT, oldest first", 0, _cmd_list),
        ("show", "a model's record: recipe, lineage, metrics and files", 1, _cmd_show),
        ("diff", "what differs between two models (recipe, lineage, metrics, files)", 2, _cmd_diff),
    ):
        p = models_sub.add_parser(action, help=text, description=text)
        if refs >= 1:
            p.add_argument("model", help="KIND/ID, an id prefix, or KIND/latest")
        if refs == 2:
            p.add_argument("other", help="the model to compare with")
        if action == "list":
            p.add_argument("--kind", choices=MODEL_KINDS, help="only models of this kind")
        p.add_argument("--root", required=True, help="output root holding models/")
        p.set_defaults(func=func)
    small = models_sub.add_parser(
        "train-small",
        help="train the small separator and aligner on synthetic songs and publish them under ROOT",
        description="Generate a synthetic training corpus, train a small HTDemucs separator and a small wav2vec2 CTC "
        "aligner on it (minutes on a CPU, deterministic for a seed), judge both on held-out songs through the real "
        "stages, and publish them as model artifacts under ROOT/models/. The repository ships the result in assets/.",
    )
    small.add_argument("--root", type=Path, required=True, help="where the models (and the work folders) go")
    small.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the training draws")
    small.add_argument("--steps", type=int, help="training steps of both models (default: each recipe's own)")
    small.set_defaults(func=_cmd_train_small)
    smoke = models_sub.add_parser(
        "smoke",
        help="build tiny random models in each library's own format",
        description="Build small randomly initialised models (Demucs HTDemucs) and save them in the library's "
        "own repository format under OUT, so jobs load them through the real loading code with no network. "
        "Their outputs are meaningless; runs that use them say so in their report.",
    )
    smoke.add_argument("--out", type=Path, required=True, help="folder for the model repositories")
    smoke.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    smoke.set_defaults(func=_cmd_smoke)
