"""Tests of the BEST-RQ tokenizer network, on the ``tiny`` size and CPU, a few seconds each."""
