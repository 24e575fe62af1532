"""songcorpus: build, version and train on lyrics-to-song corpora.

The rooms are subpackages: ``songcorpus.schemas`` (data contracts), ``.pipeline`` (the engine), ``.stages``
(one module per unit of work), ``.models`` (the networks), ``.training`` (trainers on Ray Train),
``.evaluation`` (metrics and the paper's tables) and ``.synth`` (the synthetic corpus); this package wires
them into the ``songcorpus`` command. Each room is a top-level folder linked in here, which is why
tracebacks show ``songcorpus/<room>/...``.
"""

__version__ = "0.1.0"
