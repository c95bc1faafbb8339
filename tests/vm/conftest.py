"""VM test fixtures: a real 6.12 lab kernel with DAMON booted under QEMU.

Every test under ``tests/vm`` carries the ``vm`` marker.  They are skipped
unless selected explicitly -- ``pytest -m vm tests/vm`` -- or
``DAMON_FLEET_VM=1`` is set, because a cold cache means a kernel build
(~7 min on 2 cores) and a debootstrap run.  Kernel and image are cached under
``$DAMON_FLEET_CACHE`` (default ``~/.cache/damon-fleet``); QEMU uses TCG unless
``DAMON_FLEET_ACCEL=kvm``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from damon_fleet.labvm import LabVm, build_image, build_kernel, ssh_key_path

VM_DIR = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "vm: boots the QEMU lab VM (real DAMON kernel); select with -m vm"
    )


def _vm_selected(config: pytest.Config) -> bool:
    if os.environ.get("DAMON_FLEET_VM") == "1":
        return True
    markexpr = str(config.getoption("markexpr", default="") or "")
    return "vm" in markexpr.replace("not vm", "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = _vm_selected(config)
    skip = pytest.mark.skip(reason="VM tests: run with `pytest -m vm` or DAMON_FLEET_VM=1")
    for item in items:
        if VM_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.vm)
            if not selected:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def lab_vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabVm]:
    """A started lab VM (SSH reachable), shared by the session and stopped at its end."""
    started = time.monotonic()
    kernel = build_kernel()
    image = build_image()
    prepared = time.monotonic() - started
    vm = LabVm(kernel, image, ssh_key=ssh_key_path(), workdir=tmp_path_factory.mktemp("labvm"))
    vm.start()
    try:
        boot = vm.wait_ssh()
        print(
            f"\nlab VM: kernel+image ready in {prepared:.1f}s, boot to SSH {boot:.1f}s, "
            f"port {vm.port}"
        )
        yield vm
    finally:
        vm.stop()
