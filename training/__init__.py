"""Trainers on Ray Train, checkpoints, model artifacts and their registry."""
