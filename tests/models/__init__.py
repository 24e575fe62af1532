"""Tests of the networks room (``songcorpus.models``)."""
