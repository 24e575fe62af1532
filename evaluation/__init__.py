"""Metrics and evaluation reports: token-level DSLM metrics (audio metrics join them with the LDM)."""
