import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny networks: one thread is fastest, the machine is shared, and the tiny presets set one
    thread for their runs; whatever a test sets is put back."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
