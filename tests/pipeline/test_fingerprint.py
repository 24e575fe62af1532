from songcorpus.pipeline.fingerprint import canonical_json, stage_fingerprint

BASE = {"stage": "s", "version": 1, "config": {"a": 1, "b": [1, 2]}, "weights": None, "input_fingerprint": "x"}


def test_key_order_does_not_matter():
    assert canonical_json({"b": 1, "a": 2}) == canonical_json({"a": 2, "b": 1})


def test_every_component_changes_the_fingerprint():
    fp = stage_fingerprint(**BASE)
    assert fp == stage_fingerprint(**{**BASE, "config": {"b": [1, 2], "a": 1}})
    for change in ({"stage": "t"}, {"version": 2}, {"config": {"a": 2, "b": [1, 2]}}, {"weights": "w"},
                   {"input_fingerprint": "y"}):
        assert stage_fingerprint(**{**BASE, **change}) != fp


def test_the_fast_per_stage_form_hashes_exactly_the_canonical_json():
    """Fingerprints of earlier runs stay valid: the precomputed form hashes the same text as ``digest``."""
    from songcorpus.pipeline.fingerprint import digest

    config = {"z": [1.5, "é", None], "a": {"nested": True}}
    for weights in (None, "w" * 32):
        fields = {"stage": "sep", "version": 3, "config": config, "weights": weights}
        want = digest({**fields, "input": 'in"put'})
        assert stage_fingerprint(**fields, input_fingerprint='in"put') == want
