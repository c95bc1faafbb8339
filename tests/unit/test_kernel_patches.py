"""Kernel patch series manifests (``kernel-patches/*/manifest.yml``), format 1.

The format is defined once, in ``plugins/module_utils/kernel/series.py``, and documented
in ``kernel-patches/README.md``; this file adds the repository's own policy.
Fast: reads the manifests, fragments and bundled mboxes; builds nothing.
"""

from __future__ import annotations

import copy
import email.header
import hashlib
import mailbox
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel import series as ks
from conftest import ROOT

PATCH_DIR = ROOT / "kernel-patches"
MANIFESTS = sorted(PATCH_DIR.glob("*/manifest.yml"))

# Repository policy on top of the format (plugins/module_utils/kernel/series.py is the one
# definition of the format): every series here is a DAMON series, so it requires these.
REQUIRED_OPTIONS = {
    "CONFIG_DAMON",
    "CONFIG_DAMON_VADDR",
    "CONFIG_DAMON_PADDR",
    "CONFIG_DAMON_SYSFS",
    "CONFIG_PERF_EVENTS",
}


def validate(manifest: object, directory: Path) -> list[str]:
    """Every format violation (the product's validator) plus the repository's policy."""
    errors = ks.validate_manifest(manifest, directory.name, lambda rel: (directory / rel).is_file())
    if isinstance(manifest, dict) and isinstance(manifest.get("config"), dict):
        missing = REQUIRED_OPTIONS - set(manifest["config"].get("required", []))
        if missing:
            errors.append(f"config.required: lacks {sorted(missing)} (every series is DAMON's)")
    return errors


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path}: not a mapping"
    return data


def mbox_subjects(path: Path) -> list[str]:
    """Patch subjects of an mbox, unfolded, without the ``[PATCH ...]`` prefix."""
    subjects = []
    for message in mailbox.mbox(path):
        raw = str(email.header.make_header(email.header.decode_header(message["Subject"])))
        subject = " ".join(raw.split())
        subjects.append(re.sub(r"^(\[[^\]]*\]\s*)+", "", subject))
    return subjects


def fragment_options(path: Path) -> dict[str, str]:
    options = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"(CONFIG_[A-Z0-9_]+)=(.*)", line.strip())
        if match:
            options[match[1]] = match[2]
        match = re.fullmatch(r"# (CONFIG_[A-Z0-9_]+) is not set", line.strip())
        if match:
            options[match[1]] = "n"
    return options


def bundled_mbox(manifest: dict[str, Any], directory: Path) -> Path:
    source = manifest["source"]
    assert source["type"] == "bundled"
    return directory / source["path"]


ids = [p.parent.name for p in MANIFESTS]
# The mbox checks apply to the series that carry their mbox (pinned in the repository).
# A b4 series has no mbox here: it is pinned when first fetched, and kernel_series_check
# refuses its unpinned mbox (test_kernel_build_modules.py::test_series_check_unpinned_b4_series).
BUNDLED = [p for p in MANIFESTS if load(p)["source"]["type"] == "bundled"]
bundled_ids = [p.parent.name for p in BUNDLED]


def test_the_two_series_exist() -> None:
    assert {"damon-perf-rfc-v3", "lab-perf-events-abi"} <= set(ids)
    assert bundled_ids == ["lab-perf-events-abi"]


@pytest.mark.parametrize("path", MANIFESTS, ids=ids)
def test_manifest_matches_schema(path: Path) -> None:
    assert validate(load(path), path.parent) == []


@pytest.mark.parametrize("name", ["damon-perf-rfc-v3", "lab-perf-events-abi"])
def test_layout_is_rfc_v3(name: str) -> None:
    assert load(PATCH_DIR / name / "manifest.yml")["layout"] == "rfc-v3"


@pytest.mark.parametrize("path", MANIFESTS, ids=ids)
def test_fragment_sets_every_required_option(path: Path) -> None:
    manifest = load(path)
    options = fragment_options(path.parent / manifest["config"]["fragment"])
    for option in manifest["config"]["required"]:
        assert options.get(option) == "y", f"{option} is not =y in the fragment"


@pytest.mark.parametrize(
    "path", [p for p in MANIFESTS if p not in BUNDLED], ids=lambda p: p.parent.name
)
def test_a_series_without_its_mbox_is_fetched_with_b4_and_unpinned(path: Path) -> None:
    """Why the mbox checks below do not apply to it: nothing is pinned that was not checked."""
    manifest = load(path)
    assert manifest["source"]["type"] == "b4"
    assert manifest["pins"]["mbox_sha256"] is None
    assert all(p["patch_id"] is None for p in manifest["patches"])


@pytest.mark.parametrize("path", BUNDLED, ids=bundled_ids)
def test_bundled_mbox_matches_pin(path: Path) -> None:
    manifest = load(path)
    digest = hashlib.sha256(bundled_mbox(manifest, path.parent).read_bytes()).hexdigest()
    assert digest == manifest["pins"]["mbox_sha256"]


@pytest.mark.parametrize("path", BUNDLED, ids=bundled_ids)
def test_bundled_mbox_subjects_match_manifest(path: Path) -> None:
    manifest = load(path)
    mbox = bundled_mbox(manifest, path.parent)
    assert mbox_subjects(mbox) == [p["subject"] for p in manifest["patches"]]


@pytest.mark.parametrize("path", BUNDLED, ids=bundled_ids)
def test_bundled_mbox_has_a_diff_in_every_message(path: Path) -> None:
    """`git am` stops at a message without a diff (e.g. a cover letter)."""
    manifest = load(path)
    for message in mailbox.mbox(bundled_mbox(manifest, path.parent)):
        payload = message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        assert b"\ndiff --git " in payload, message["Subject"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.parametrize("path", BUNDLED, ids=bundled_ids)
def test_bundled_patch_ids_match_manifest(path: Path) -> None:
    manifest = load(path)
    out = subprocess.run(
        ["git", "patch-id", "--stable"],
        input=bundled_mbox(manifest, path.parent).read_bytes(),
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    got = [line.split()[0] for line in out.splitlines()]
    assert got == [p["patch_id"] for p in manifest["patches"]]


def test_rfc_v3_manifest_names_the_real_series() -> None:
    manifest = load(PATCH_DIR / "damon-perf-rfc-v3" / "manifest.yml")
    assert manifest["stand_in"] is False
    source = manifest["source"]
    assert source["type"] == "b4"
    assert source["message_id"] == "20260423004211.7037-1-akinobu.mita@gmail.com"
    assert {p["version"]: p["message_id"] for p in source["previous"]} == {
        1: "20260123021014.26915-1-akinobu.mita@gmail.com",
        2: "20260309010009.11639-1-akinobu.mita@gmail.com",
    }
    assert [p["subject"] for p in manifest["patches"]] == [
        "mm/damon/core: add code borrowed from report-based monitoring work",
        "mm/damon/core: add common code for perf event based access check",
        "mm/damon/vaddr: support perf event based access check",
        "mm/damon/paddr: support perf event based access check",
    ]
    base = manifest["base"]
    assert base["type"] == "git"
    assert base["url"] == "https://git.kernel.org/pub/scm/linux/kernel/git/sj/linux.git"
    assert base["branch"] == "damon/next"
    # Not fetched yet: nothing pinned that was not checked.
    assert manifest["pins"]["mbox_sha256"] is None
    assert all(p["patch_id"] is None for p in manifest["patches"])
    assert "PMU" in manifest["config"]["notes"]


def test_lab_manifest_says_it_is_a_stand_in() -> None:
    manifest = load(PATCH_DIR / "lab-perf-events-abi" / "manifest.yml")
    assert manifest["stand_in"] is True
    assert "stand-in" in manifest["description"]
    assert "without PEBS" in manifest["description"]
    base = manifest["base"]
    assert base["type"] == "debian-package"
    assert base["package"] == "linux-source-6.12"
    assert base["tested_version"].startswith(base["kernel_version"])
    assert all(p["patch_id"] for p in manifest["patches"])


def test_lab_commit_messages_say_it_is_a_stand_in() -> None:
    mbox = PATCH_DIR / "lab-perf-events-abi" / "series.mbox"
    for message in mailbox.mbox(mbox):
        payload = message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        body = payload.decode().split("\n---\n", 1)[0]
        assert "lab stand-in" in body, message["Subject"]


# The validator itself: each broken manifest is refused with a readable reason.
def _broken(change: str) -> dict[str, Any]:
    manifest = copy.deepcopy(load(PATCH_DIR / "lab-perf-events-abi" / "manifest.yml"))
    if change == "missing key":
        del manifest["layout"]
    elif change == "unknown key":
        manifest["pin"] = {}
    elif change == "bad layout":
        manifest["layout"] = "rfc-v4"
    elif change == "no patches":
        manifest["patches"] = []
    elif change == "prefixed subject":
        manifest["patches"][0]["subject"] = "[PATCH] x"
    elif change == "bundled unpinned":
        manifest["pins"]["mbox_sha256"] = None
    elif change == "bad source type":
        manifest["source"]["type"] = "http"
    elif change == "required option dropped":
        manifest["config"]["required"].remove("CONFIG_PERF_EVENTS")
    elif change == "format as bool":
        manifest["format"] = True
    return manifest


REFUSED = {
    "missing key": ["manifest.layout: missing (required)"],
    "unknown key": [
        "manifest.pin: unknown key (accepted keys: format, name, description, layout, "
        "stand_in, source, base, patches, pins, config)"
    ],
    "bad layout": [
        "manifest.layout: 'rfc-v4' is not accepted (one of: mainline, rfc-v1, rfc-v2, rfc-v3)"
    ],
    "no patches": ["manifest.patches: is empty (at least one patch)"],
    "prefixed subject": [
        "patches[0].subject: '[PATCH] x' is not accepted (leave the [PATCH ...] prefix out)"
    ],
    "bundled unpinned": ["pins.mbox_sha256: is null, but a bundled series must be pinned"],
    "bad source type": ["source.type: 'http' is not accepted (one of: b4, bundled, mbox)"],
    "required option dropped": [
        "config.required: lacks ['CONFIG_PERF_EVENTS'] (every series is DAMON's)"
    ],
    "format as bool": ["manifest.format: is bool, expected an integer"],
}


@pytest.mark.parametrize("change", sorted(REFUSED))
def test_validator_refuses(change: str) -> None:
    assert validate(_broken(change), PATCH_DIR / "lab-perf-events-abi") == REFUSED[change]
