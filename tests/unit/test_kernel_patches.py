"""Kernel patch series manifests (``kernel-patches/*/manifest.yml``), format 1.

The schema is defined here and documented in ``kernel-patches/README.md``.
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
from conftest import ROOT

PATCH_DIR = ROOT / "kernel-patches"
MANIFESTS = sorted(PATCH_DIR.glob("*/manifest.yml"))

LAYOUTS = {"rfc-v1", "rfc-v2", "rfc-v3", "mainline"}
SOURCE_TYPES = {"b4", "mbox", "bundled"}
BASE_TYPES = {"git", "debian-package"}
REQUIRED_OPTIONS = {
    "CONFIG_DAMON",
    "CONFIG_DAMON_VADDR",
    "CONFIG_DAMON_PADDR",
    "CONFIG_DAMON_SYSFS",
    "CONFIG_PERF_EVENTS",
}

HEX40 = re.compile(r"[0-9a-f]{40}")
HEX64 = re.compile(r"[0-9a-f]{64}")
MESSAGE_ID = re.compile(r"[^<>\s@]+@[^<>\s@]+")
OPTION = re.compile(r"CONFIG_[A-Z0-9_]+")

# key -> (type, required); a nested schema is a dict instead of a type.
Schema = dict[str, tuple[Any, bool]]

TOP: Schema = {
    "format": (int, True),
    "name": (str, True),
    "description": (str, True),
    "layout": (str, True),
    "stand_in": (bool, True),
    "source": (dict, True),
    "base": (dict, True),
    "patches": (list, True),
    "pins": (dict, True),
    "config": (dict, True),
}
SOURCE: dict[str, Schema] = {
    "b4": {
        "type": (str, True),
        "message_id": (str, True),
        "version": (int, True),
        "previous": (list, False),
    },
    "mbox": {"type": (str, True), "path": (str, True)},
    "bundled": {"type": (str, True), "path": (str, True), "cover": (str, False)},
}
PREVIOUS: Schema = {"version": (int, True), "message_id": (str, True)}
BASE: dict[str, Schema] = {
    "git": {
        "type": (str, True),
        "url": (str, True),
        "branch": (str, True),
        "commit": ((str, type(None)), True),
        "notes": (str, False),
    },
    "debian-package": {
        "type": (str, True),
        "package": (str, True),
        "tested_version": (str, True),
        "kernel_version": (str, True),
        "tarball": (str, True),
        "notes": (str, False),
    },
}
PATCH: Schema = {"subject": (str, True), "patch_id": ((str, type(None)), True)}
PINS: Schema = {"mbox_sha256": ((str, type(None)), True)}
CONFIG: Schema = {
    "fragment": (str, True),
    "required": (list, True),
    "notes": (str, False),
}


def _check_keys(where: str, data: object, schema: Schema) -> list[str]:
    if not isinstance(data, dict):
        return [f"{where}: expected a mapping, got {type(data).__name__}"]
    errors = [f"{where}: unknown key {key!r}" for key in data if key not in schema]
    for key, (kind, required) in schema.items():
        if key not in data:
            if required:
                errors.append(f"{where}: missing key {key!r}")
            continue
        value = data[key]
        # bool is an int subclass: keep `format: true` from passing as 1.
        if (isinstance(value, bool) and kind is int) or not isinstance(value, kind):
            errors.append(f"{where}.{key}: wrong type {type(value).__name__}")
    return errors


def validate(manifest: object, directory: Path) -> list[str]:
    """Every schema violation of one manifest, as readable strings (empty: valid)."""
    errors = _check_keys("manifest", manifest, TOP)
    if errors:
        return errors
    assert isinstance(manifest, dict)
    if manifest["format"] != 1:
        errors.append(f"format: unsupported {manifest['format']!r}")
    if manifest["name"] != directory.name:
        errors.append(f"name: {manifest['name']!r} is not the directory name")
    if manifest["layout"] not in LAYOUTS:
        errors.append(f"layout: {manifest['layout']!r} not in {sorted(LAYOUTS)}")
    if not manifest["description"].strip():
        errors.append("description: empty")

    source = manifest["source"]
    stype = source.get("type")
    if stype not in SOURCE_TYPES:
        errors.append(f"source.type: {stype!r} not in {sorted(SOURCE_TYPES)}")
    else:
        errors += _check_keys("source", source, SOURCE[stype])
        if stype == "b4":
            if not MESSAGE_ID.fullmatch(str(source.get("message_id"))):
                errors.append("source.message_id: not a bare Message-ID")
            for i, prev in enumerate(source.get("previous", [])):
                errors += _check_keys(f"source.previous[{i}]", prev, PREVIOUS)
                if isinstance(prev, dict) and not MESSAGE_ID.fullmatch(str(prev.get("message_id"))):
                    errors.append(f"source.previous[{i}].message_id: not a bare Message-ID")
        elif stype == "bundled":
            for key in ("path", "cover"):
                if key in source and not (directory / source[key]).is_file():
                    errors.append(f"source.{key}: {source[key]} does not exist")

    base = manifest["base"]
    btype = base.get("type")
    if btype not in BASE_TYPES:
        errors.append(f"base.type: {btype!r} not in {sorted(BASE_TYPES)}")
    else:
        errors += _check_keys("base", base, BASE[btype])
        commit = base.get("commit")
        if btype == "git" and commit is not None and not HEX40.fullmatch(str(commit)):
            errors.append("base.commit: not a 40-hex commit id")

    if not manifest["patches"]:
        errors.append("patches: empty")
    for i, patch in enumerate(manifest["patches"]):
        errors += _check_keys(f"patches[{i}]", patch, PATCH)
        if not isinstance(patch, dict):
            continue
        if not str(patch.get("subject", "")).strip():
            errors.append(f"patches[{i}].subject: empty")
        if str(patch.get("subject", "")).startswith("["):
            errors.append(f"patches[{i}].subject: keep the [PATCH ...] prefix out")
        pid = patch.get("patch_id")
        if pid is not None and not HEX40.fullmatch(str(pid)):
            errors.append(f"patches[{i}].patch_id: not a 40-hex patch id")

    pins = manifest["pins"]
    errors += _check_keys("pins", pins, PINS)
    sha = pins.get("mbox_sha256")
    if sha is not None and not HEX64.fullmatch(str(sha)):
        errors.append("pins.mbox_sha256: not a 64-hex sha256")
    if sha is None and stype == "bundled":
        errors.append("pins.mbox_sha256: a bundled series must be pinned")

    config = manifest["config"]
    errors += _check_keys("config", config, CONFIG)
    for option in config.get("required", []):
        if not OPTION.fullmatch(str(option)):
            errors.append(f"config.required: {option!r} is not a CONFIG_* name")
    missing = REQUIRED_OPTIONS - set(config.get("required", []))
    if missing:
        errors.append(f"config.required: lacks {sorted(missing)}")
    if "fragment" in config and not (directory / config["fragment"]).is_file():
        errors.append(f"config.fragment: {config['fragment']} does not exist")
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


def bundled_mbox(manifest: dict[str, Any], directory: Path) -> Path | None:
    source = manifest["source"]
    if source["type"] == "bundled":
        return directory / source["path"]
    return None


ids = [p.parent.name for p in MANIFESTS]


def test_the_two_series_exist() -> None:
    assert {"damon-perf-rfc-v3", "lab-perf-events-abi"} <= set(ids)


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


@pytest.mark.parametrize("path", MANIFESTS, ids=ids)
def test_bundled_mbox_matches_pin(path: Path) -> None:
    manifest = load(path)
    mbox = bundled_mbox(manifest, path.parent)
    if mbox is None:
        pytest.skip("not bundled: pinned when first fetched")
    digest = hashlib.sha256(mbox.read_bytes()).hexdigest()
    assert digest == manifest["pins"]["mbox_sha256"]


@pytest.mark.parametrize("path", MANIFESTS, ids=ids)
def test_bundled_mbox_subjects_match_manifest(path: Path) -> None:
    manifest = load(path)
    mbox = bundled_mbox(manifest, path.parent)
    if mbox is None:
        pytest.skip("not bundled")
    assert mbox_subjects(mbox) == [p["subject"] for p in manifest["patches"]]


@pytest.mark.parametrize("path", MANIFESTS, ids=ids)
def test_bundled_mbox_has_a_diff_in_every_message(path: Path) -> None:
    """`git am` stops at a message without a diff (e.g. a cover letter)."""
    manifest = load(path)
    mbox = bundled_mbox(manifest, path.parent)
    if mbox is None:
        pytest.skip("not bundled")
    for message in mailbox.mbox(mbox):
        payload = message.get_payload(decode=True)
        assert isinstance(payload, bytes)
        assert b"\ndiff --git " in payload, message["Subject"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.parametrize("path", MANIFESTS, ids=ids)
def test_bundled_patch_ids_match_manifest(path: Path) -> None:
    manifest = load(path)
    mbox = bundled_mbox(manifest, path.parent)
    if mbox is None:
        pytest.skip("not bundled")
    out = subprocess.run(
        ["git", "patch-id", "--stable"],
        input=mbox.read_bytes(),
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


@pytest.mark.parametrize(
    "change",
    [
        "missing key",
        "unknown key",
        "bad layout",
        "no patches",
        "prefixed subject",
        "bundled unpinned",
        "bad source type",
        "required option dropped",
        "format as bool",
    ],
)
def test_validator_refuses(change: str) -> None:
    assert validate(_broken(change), PATCH_DIR / "lab-perf-events-abi") != []
