"""Synthetic songs with known truth: vocals, accompaniment, lyrics and timings."""
