"""songcorpus: build, version and train on lyrics-to-song corpora.

The rooms of DESIGN.md §2 are subpackages: ``songcorpus.schemas``, ``.pipeline``, ``.stages``,
``.models`` and ``.synth``; this package only wires them into the ``songcorpus`` command.
"""

__version__ = "0.1.0"
