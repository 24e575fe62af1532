"""Networks and their math as pure torch, one sub-package each; no Ray, no files. ``bestrq``: the tokenizer network."""
