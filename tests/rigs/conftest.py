"""The bridge tests' served rig: a fake LEAP hand behind a `RigServer` on a free port, with the test module's
``TOKEN``."""

import pytest

from simreal.rigs.bridge import RigServer
from simreal.rigs.leap import FakeMotorBus, LeapHandRig
from simreal.rigs.base import SafetyConfig


@pytest.fixture
def served(request):
    bus = FakeMotorBus()
    rig = LeapHandRig(bus, safety=SafetyConfig(max_delta=0.1, watchdog_timeout=None))
    server = RigServer(rig, request.module.TOKEN, port=0).start()
    yield server, rig, bus
    server.stop()
    rig.close()
