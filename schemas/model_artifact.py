"""The model artifact contract (docs/design.md): what ``<root>/models/<kind>/<id>/artifact.json`` holds.

Every trained thing (tokenizer, DSLM, VAE, LDM, the small separator and aligner) is one immutable
folder: its weight files in each library's own format, and this record, written last. The id is a
hash of the record's identity (kind, name, config, lineage and every file's sha256), so the same
weights trained from the same recipe and data get the same id; metrics and the creation time are
kept beside it, outside the hash.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from .base import StrictModel

ARTIFACT_FILE = "artifact.json"
#: a tokenizer artifact's files: its weights (the whole ``Tokenizer`` state dict) and its config
#: (``{"bestrq": BestRqConfig as a dict, "layer": int, "codes": int}``)
TOKENIZER_WEIGHTS = "tokenizer.safetensors"
TOKENIZER_CONFIG = "tokenizer.json"
#: a DSLM artifact's files: its weights and ``{"dslm": DslmConfig as a dict, "lyrics_tokenizer": version,
#: "token_rate": Hz, "tokenizer": the tokenizer artifact id}``
DSLM_WEIGHTS = "dslm.safetensors"
DSLM_CONFIG = "dslm.json"
#: a VAE artifact's files: its weights and ``{"vae": VaeConfig as a dict}``
VAE_WEIGHTS = "vae.safetensors"
VAE_CONFIG = "vae.json"
#: an LDM artifact's files: its weights (with the latent statistics) and ``{"ldm": LdmConfig as a dict, "vae": the
#: VAE artifact id whose latents it makes, "tokenizer": the tokenizer artifact id whose tokens it reads}``
LDM_WEIGHTS = "ldm.safetensors"
LDM_CONFIG = "ldm.json"
#: kinds of model artifacts, each a folder under ``<root>/models/``
MODEL_KINDS = ("separator", "aligner", "tokenizer", "dslm", "vae", "ldm")


class ModelArtifact(StrictModel):
    """One published model: identity, how it was made, how good it is, and its files."""

    schema_version: int = 1
    kind: str = Field(description=f"one of {', '.join(MODEL_KINDS)}")
    id: str = Field(description="hash of the identity fields, 16 hex characters")
    name: str = Field(description="the name its library loads it by (e.g. a Demucs model name)")
    summary: str = Field(description="one line for listings, run reports and data cards")
    config: dict[str, Any] = Field(description="the recipe: every setting that changed the weights")
    lineage: dict[str, Any] = Field(description="what it was made from: data, parent models, code version")
    files: dict[str, str] = Field(description="path inside the folder -> sha256")
    metrics: dict[str, Any] = Field(default_factory=dict, description="evaluation results (not hashed)")
    created: str = Field("", description="UTC time of publishing (not hashed)")

    #: the fields the id is a hash of
    IDENTITY: ClassVar[tuple[str, ...]] = ("kind", "name", "config", "lineage", "files")

    def identity(self) -> dict[str, Any]:
        return self.model_dump(mode="json", include=set(self.IDENTITY))
