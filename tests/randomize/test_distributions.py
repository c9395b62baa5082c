import numpy as np
import pytest
from pydantic import TypeAdapter
from scipy import stats

from simreal.randomize.distributions import Distribution

ADAPTER = TypeAdapter(Distribution)
CONTINUOUS = [
    {"type": "uniform", "low": -2.0, "high": 3.0},
    {"type": "loguniform", "low": 0.3, "high": 3.0},
    {"type": "normal", "mean": 1.0, "std": 0.4},
    {"type": "truncnormal", "mean": 0.0, "std": 1.0, "low": -0.5, "high": 2.0},
]


@pytest.mark.parametrize("spec", CONTINUOUS, ids=lambda s: s["type"])
def test_continuous_samples_follow_the_yaml_law(spec):
    dist = ADAPTER.validate_python(spec)
    x = dist.sample(np.random.default_rng(0), (20000,))
    assert stats.kstest(x, dist.scipy().cdf).pvalue > 0.01
    if "low" in spec:
        assert x.min() >= spec["low"] and x.max() <= spec["high"]


def test_choice_frequencies_and_constant():
    dist = ADAPTER.validate_python({"type": "choice", "values": [0, 1, 2], "weights": [1, 2, 7]})
    x = dist.sample(np.random.default_rng(0), (30000,))
    freq = np.bincount(x.astype(int), minlength=3) / x.size
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.7], atol=0.01)
    const = ADAPTER.validate_python({"type": "constant", "value": 4.5})
    assert np.all(const.sample(np.random.default_rng(0), (5,)) == 4.5)


@pytest.mark.parametrize("bad", [
    {"type": "uniform", "low": 2, "high": 1},
    {"type": "loguniform", "low": 0, "high": 1},
    {"type": "normal", "std": -1},
    {"type": "truncnormal", "std": 1, "low": 1, "high": 1},
    {"type": "choice", "values": []},
    {"type": "choice", "values": [1, 2], "weights": [1]},
    {"type": "gamma", "k": 1},
])
def test_invalid_distributions_are_rejected(bad):
    with pytest.raises(Exception):
        ADAPTER.validate_python(bad)
