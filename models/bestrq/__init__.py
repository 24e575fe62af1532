"""BEST-RQ, the self-supervised tokenizer network: log-mel front end, frozen random-projection quantizer targets,
span masking with noise, a conformer encoder that predicts the masked targets, and its intermediate layers for
the semantic quantizer. Pure torch.
"""

from songcorpus.models.bestrq.config import SIZES, BestRqConfig, config_for
from songcorpus.models.bestrq.features import FeatureNormalizer, LogMel, frame_count, padding_mask
from songcorpus.models.bestrq.masking import apply_mask, sample_span_mask
from songcorpus.models.bestrq.model import BestRq, BestRqLoss, masked_cross_entropy, parameter_count
from songcorpus.models.bestrq.quantizer import CodebookUsage, RandomProjectionQuantizer, codebook_usage
from songcorpus.models.bestrq.semantic import SemanticQuantizer, Tokenizer

__all__ = [
    "SIZES",
    "BestRq",
    "BestRqConfig",
    "BestRqLoss",
    "CodebookUsage",
    "FeatureNormalizer",
    "LogMel",
    "RandomProjectionQuantizer",
    "SemanticQuantizer",
    "Tokenizer",
    "apply_mask",
    "codebook_usage",
    "config_for",
    "frame_count",
    "masked_cross_entropy",
    "padding_mask",
    "parameter_count",
    "sample_span_mask",
]
