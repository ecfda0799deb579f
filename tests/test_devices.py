"""The gpu resource follows the device a job can resolve to, decided without torch."""

import pytest

from zoharness import devices


@pytest.mark.parametrize(
    "device,gpu_machine,expected",
    [
        ("cuda", False, True),
        ("cuda", True, True),
        ("auto", True, True),
        ("auto", False, False),
        ("cpu", True, False),
    ],
)
def test_can_be_cuda(monkeypatch, device, gpu_machine, expected):
    monkeypatch.setattr(devices, "nvidia_device_present", lambda: gpu_machine)
    assert devices.can_be_cuda(device) is expected
