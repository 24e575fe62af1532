"""Networks and their math (BEST-RQ, quantizers, DSLM) as pure torch; no Ray, no files. Arrives with the tokenizer."""
