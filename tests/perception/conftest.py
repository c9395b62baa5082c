"""The pose tests' dataset: 48 randomized 24x24 samples, rendered once per test session."""

import pytest

from simreal.perception.dataset import DatasetSettings, write_dataset

SETTINGS = DatasetSettings(randomization="dactyl", height=24, width=24, seed=0, shard_size=24, antialias=0)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pose-data")
    write_dataset(folder, SETTINGS, 48, n_envs=8, progress=False)
    return folder
