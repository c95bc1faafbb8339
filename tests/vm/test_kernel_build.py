"""The kernel_build role for real: playbooks/build.yml on Debian's linux-source-6.12.

Slow tier. The first run builds the lab series on tinyconfig + kvm_guest.config +
kernel-patches/lab-kernel.config (~7-10 min on 2 cores with a cold cache); the builds
stay in the cache (``$DAMON_FLEET_CACHE`` or ``~/.cache/damon-fleet``), so later runs
find them and only check that they are skipped. Select with ``pytest -m vm tests/vm``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kernel_build_play import kernel_build_play

ROOT = Path(__file__).resolve().parents[2]
LAB_SERIES = ROOT / "kernel-patches" / "lab-perf-events-abi"
TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(not TARBALL.is_file(), reason="needs linux-source-6.12 installed"),
    pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb"),
]

# The build deploy.yml makes for the lab fleet (inventories/lab/group_vars/all.yml), so
# this tier and the molecule scenarios share one cached build.
LAB_VARS: dict[str, Any] = {
    **{
        key: value
        for key, value in yaml.safe_load(
            (ROOT / "inventories" / "lab" / "group_vars" / "all.yml").read_text()
        ).items()
        if key.startswith("kernel_build_")
    },
    "kernel_build_keep_tree": True,
}
RECAP = re.compile(r"(\S+) : ok=(\d+) changed=(\d+) unreachable=(\d+) failed=(\d+)")
TIMINGS: dict[str, float] = {}


class Run:
    def __init__(self, proc: subprocess.CompletedProcess[str], seconds: float) -> None:
        self.rc = proc.returncode
        # Whitespace collapsed: the callback wraps long messages.
        self.output = " ".join((proc.stdout + proc.stderr).split())
        self.seconds = seconds
        recap = RECAP.findall(self.output)
        self.changed = int(recap[-1][2]) if recap else None
        self.failed = int(recap[-1][4]) if recap else None

    def build_dir(self) -> Path:
        match = re.search(r" in (/\S+/builds/[0-9a-f]{16})", self.output)
        assert match, self.output[-3000:]
        return Path(match[1])


def playbook(tmp_path: Path, extra: dict[str, Any], *args: str, label: str = "") -> Run:
    varsfile = tmp_path / f"vars-{time.monotonic_ns()}.yml"
    varsfile.write_text(yaml.safe_dump(extra))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    started = time.monotonic()
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "playbooks/build.yml",
         "-e", f"@{varsfile}", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=5400, check=False,
    )  # fmt: skip
    run = Run(proc, time.monotonic() - started)
    if label:
        TIMINGS[label] = run.seconds
        print(f"\n{label}: {run.seconds:.1f}s (changed={run.changed})")
    return run


def plan_only(tmp_path: Path, extra: dict[str, Any]) -> dict[str, Any]:
    """Run the role in check mode (nothing is built) and return ``kernel_build_result``."""
    result = tmp_path / "kernel_build_result.json"
    play = kernel_build_play(result, "Plan a kernel build")
    play[0]["post_tasks"][0]["check_mode"] = False  # the test's own file, also in check mode
    (tmp_path / "plan.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    varsfile = tmp_path / "vars-plan.yml"
    varsfile.write_text(yaml.safe_dump(extra))
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(tmp_path / "plan.yml"),
         "-e", f"@{varsfile}", "--check"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    data: dict[str, Any] = json.loads(result.read_text())
    return data


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def vmlinux_from_deb(deb: Path) -> bytes:
    """The decompressed kernel of a linux-image .deb (the payload of its bzImage)."""
    tar_bytes = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        member = next(m for m in tar.getmembers() if re.search(r"boot/vmlinuz-", m.name))
        handle = tar.extractfile(member)
        assert handle is not None
        image = handle.read()
    for magic, decompress in ((b"\xfd7zXZ\x00", _xz), (b"\x1f\x8b\x08", _gzip)):
        start = image.find(magic)
        while start >= 0:
            data = decompress(image[start:])
            if data and data.startswith(b"\x7fELF"):
                return data
            start = image.find(magic, start + 1)
    raise AssertionError(f"no xz or gzip ELF payload in {member.name}")


def _xz(data: bytes) -> bytes | None:
    try:
        return lzma.LZMADecompressor().decompress(data)
    except lzma.LZMAError:
        return None


def _gzip(data: bytes) -> bytes | None:
    try:
        return gzip.GzipFile(fileobj=io.BytesIO(data)).read()
    except (OSError, EOFError):
        return None


@pytest.fixture(scope="module")
def lab_build(tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = playbook(tmp_path_factory.mktemp("kb"), LAB_VARS, label="lab build (first run)")
    assert run.rc == 0, run.output[-6000:]
    return run


def test_lab_build_packages_and_manifest(lab_build: Run) -> None:
    build_dir = lab_build.build_dir()
    manifest = json.loads((build_dir / "manifest.json").read_text())
    localversion = manifest["localversion"]
    assert re.fullmatch(r"-lab-perf-events-abi-[0-9a-f]{8}", localversion)
    assert localversion.endswith(manifest["inputs_hash"][:8])
    assert build_dir.name == manifest["inputs_hash"][:16]
    # The release is the base tree's own version (Debian's linux-source-6.12 moves with
    # its point releases: 6.12.117, then 6.12.118) plus the series' LOCALVERSION.
    base = manifest["inputs"]["base"]
    assert base["type"] == "debian-package" and base["package"] == "linux-source-6.12"
    upstream = re.match(r"6\.12\.[0-9]+", base["version"])
    assert upstream, base
    assert manifest["kernel_release"] == upstream[0] + localversion
    assert (
        manifest["inputs"]["series"]["mbox_sha256"]
        == yaml.safe_load((LAB_SERIES / "manifest.yml").read_text())["pins"]["mbox_sha256"]
    )
    assert manifest["inputs"]["config"]["target"] == "tinyconfig"
    assert manifest["inputs"]["config"]["make_targets"] == ["kvm_guest.config"]
    assert manifest["inputs"]["config"]["fragments"] == ["lab-kernel.config"]
    assert manifest["build_seconds"] > 0

    files = {p["file"]: p for p in manifest["packages"]}
    image = next(f for f in files if f.startswith(f"linux-image-{manifest['kernel_release']}_"))
    assert image.endswith(".deb")
    for name, package in files.items():
        assert sha256(build_dir / name) == package["sha256"], name
    control = subprocess.run(
        ["dpkg-deb", "-f", str(build_dir / image), "Package"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert control == f"linux-image-{manifest['kernel_release']}"

    config = (build_dir / "config").read_text()
    assert "CONFIG_DAMON_SYSFS=y" in config.splitlines()
    assert sha256(build_dir / "config") == manifest["config"]["sha256"]

    # The series' sysfs files are in the kernel that was packaged.
    assert b"nr_perf_events" in vmlinux_from_deb(build_dir / image)
    src = build_dir / "src"
    if src.is_dir():  # kept by kernel_build_keep_tree (absent if built earlier without it)
        assert b"nr_perf_events" in (src / "vmlinux").read_bytes()
        objects = sorted((src / "mm" / "damon").glob("sysfs*.o"))
        assert any(b"nr_perf_events" in o.read_bytes() for o in objects), objects


def test_rerun_skips_the_build(lab_build: Run, tmp_path: Path) -> None:
    run = playbook(tmp_path, LAB_VARS, label="no-change re-run")
    assert run.rc == 0, run.output[-4000:]
    assert run.changed == 0, run.output[-4000:]
    assert "up to date" in run.output
    assert run.build_dir() == lab_build.build_dir()


def _series_copy(tmp_path: Path) -> Path:
    patches = tmp_path / "patches"
    shutil.copytree(LAB_SERIES, patches / LAB_SERIES.name)
    return patches / LAB_SERIES.name


def _repin(series: Path) -> None:
    """Pin the (edited) mbox of a series copy: sha256 and patch ids."""
    mbox = (series / "series.mbox").read_bytes()
    ids = subprocess.run(
        ["git", "patch-id", "--stable"], input=mbox, capture_output=True, check=True
    ).stdout.decode()
    manifest = yaml.safe_load((series / "manifest.yml").read_text())
    manifest["pins"]["mbox_sha256"] = hashlib.sha256(mbox).hexdigest()
    for patch, line in zip(manifest["patches"], ids.splitlines(), strict=True):
        patch["patch_id"] = line.split()[0]
    (series / "manifest.yml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def _edit_first_context_line(mbox: str, path: str) -> tuple[str, str]:
    """Change one context line of the first hunk on *path*; return (mbox, old line)."""
    lines = mbox.split("\n")
    start = lines.index(f"diff --git a/{path} b/{path}")
    hunk = next(i for i in range(start, len(lines)) if lines[i].startswith("@@"))
    for i in range(hunk + 1, len(lines)):
        if lines[i].startswith(" ") and lines[i].strip():
            old = lines[i]
            lines[i] = old + " /* edited */"
            return "\n".join(lines), old
    raise AssertionError("no context line")


def test_series_that_does_not_apply_names_patch_and_file(lab_build: Run, tmp_path: Path) -> None:
    series = _series_copy(tmp_path)
    mbox = (series / "series.mbox").read_text()
    edited, _ = _edit_first_context_line(mbox, "mm/damon/sysfs.c")
    (series / "series.mbox").write_text(edited)
    _repin(series)
    extra = dict(LAB_VARS, kernel_build_patches_dir=str(series.parent))
    run = playbook(tmp_path, extra, label="series that does not apply")
    try:
        assert run.rc != 0
        assert run.failed == 1
        subject = yaml.safe_load((series / "manifest.yml").read_text())["patches"][0]["subject"]
        assert f"patch '{subject}' does not apply; conflicting files: mm/damon/sysfs.c" in (
            run.output
        ), run.output[-4000:]
        assert "Build the packages" not in run.output
    finally:
        match = re.search(r"Build \S+ in (/\S+/builds/[0-9a-f]{16})", run.output)
        if match:
            shutil.rmtree(match[1], ignore_errors=True)


def test_tampered_mbox_fails_before_git_am(tmp_path: Path) -> None:
    series = _series_copy(tmp_path)
    mbox = series / "series.mbox"
    mbox.write_bytes(mbox.read_bytes().replace(b"lab stand-in", b"lab stand-out", 1))
    extra = dict(LAB_VARS, kernel_build_patches_dir=str(series.parent))
    run = playbook(tmp_path, extra, label="tampered mbox")
    assert run.rc != 0
    assert run.failed == 1
    digest = hashlib.sha256(mbox.read_bytes()).hexdigest()
    assert f"mbox sha256 {digest} does not match pins.mbox_sha256" in run.output
    assert "Verify the series before anything is applied" in run.output
    for later in ("Check out the base tree", "Apply the series with git am", "Applying:"):
        assert later not in run.output


def _boot_configs() -> list[Path]:
    return sorted(Path("/boot").glob("config-*"))


def test_reference_host_config_is_read_with_slurp(tmp_path: Path) -> None:
    """config source host on localhost: /boot/config-<release> when there is one, else a
    file given as kernel_build_config_host_path. Planned in check mode (nothing built)."""
    running = Path(f"/boot/config-{os.uname().release}")
    if running.is_file():
        path, extra = running, {}
    else:
        path = tmp_path / "config-reference"
        path.write_text("CONFIG_64BIT=y\nCONFIG_DAMON=y\n")
        extra = {"kernel_build_config_host_path": str(path)}
    plan = plan_only(
        tmp_path,
        dict(LAB_VARS, kernel_build_config_source="host", kernel_build_config_host="localhost",
             **extra),
    )  # fmt: skip
    assert plan["inputs"]["config"]["host"] == {"sha256": sha256(path)}
    assert plan["inputs"]["config"]["target"] is None
    assert plan["built"] is False


def test_series_none_plans_a_base_kernel(tmp_path: Path) -> None:
    plan = plan_only(
        tmp_path,
        dict(LAB_VARS, kernel_build_series="none", kernel_build_base_type="debian-package",
             kernel_build_base_package="linux-source-6.12"),
    )  # fmt: skip
    assert re.fullmatch(r"-base-[0-9a-f]{8}", plan["localversion"])
    assert plan["inputs"]["series"] is None
    assert plan["inputs"]["base"]["package"] == "linux-source-6.12"
    assert "CONFIG_DAMON_SYSFS" not in plan["inputs"]["config"]["required"]
    assert plan["layout"] == "mainline"
