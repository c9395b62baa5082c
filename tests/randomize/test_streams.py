import numpy as np

from simreal.randomize.streams import CopyStreams
from simreal.utils.seeding import make_rng


def test_prefetched_streams_hand_out_each_generator_in_order_whatever_the_pattern():
    streams = CopyStreams(3, "randomizer", "x", block=8)
    for i in range(3):
        streams.seed(i, 10 + i)
    expected = [make_rng(10 + i, "randomizer", "x").random(200) for i in range(3)]
    got = [[], [], []]
    pattern = [(None, 3), ([1], 5), (None, 1), ([0, 2], 7), (None, 20), ([2], 2), (None, 4)]  # 20 > block: grows
    for ids, size in pattern:
        u = streams.take(None if ids is None else np.array(ids), size)
        for row, i in enumerate(range(3) if ids is None else ids):
            got[i].extend(u[row])
    for i in range(3):
        np.testing.assert_array_equal(got[i], expected[i][:len(got[i])])


def test_reseeding_one_copy_restarts_only_its_stream():
    streams = CopyStreams(2, "s", block=4)
    streams.seed(0, 1), streams.seed(1, 2)
    streams.take(None, 3)
    streams.seed(0, 1)
    u = streams.take(None, 2)
    np.testing.assert_array_equal(u[0], make_rng(1, "s").random(2))
    np.testing.assert_array_equal(u[1], make_rng(2, "s").random(5)[3:])
    assert streams.take(np.array([], dtype=np.int64), 3).shape == (0, 3)
