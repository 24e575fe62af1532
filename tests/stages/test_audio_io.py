import numpy as np

from songcorpus.stages.audio_io import encode_flac, read_flac, read_flac_span


def test_a_flac_span_decodes_to_exactly_the_samples_of_the_whole_file():
    rate = 44100
    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal((2, rate * 7))).astype(np.float32)  # several FLAC frames and seek points
    data = encode_flac(audio, rate)
    whole, whole_rate = read_flac(data)
    for start, end in [(0.0, 1.0), (2.345678, 5.0), (3.9, 7.0)]:
        span, span_rate = read_flac_span(data, start, end)
        assert span_rate == whole_rate == rate
        np.testing.assert_array_equal(span, whole[:, round(start * rate) : round(end * rate)])
