"""kernel_series: manifest validation, mbox pins, git am failures, config checks, hashes."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.damon_fleet.fleet.plugins.module_utils.kernel import series as ks
from conftest import ROOT

PATCH_DIR = ROOT / "kernel-patches"
LAB = PATCH_DIR / "lab-perf-events-abi"
RFC = PATCH_DIR / "damon-perf-rfc-v3"
LAB_MBOX = (LAB / "series.mbox").read_bytes()


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load((path / "manifest.yml").read_text())
    assert isinstance(data, dict)
    return data


def exists_in(directory: Path) -> Callable[[str], bool]:
    return lambda rel: (directory / rel).is_file()


# --------------------------------------------------------------------------- manifest


@pytest.mark.parametrize("series", [LAB, RFC], ids=lambda p: p.name)
def test_repository_manifests_are_valid(series: Path) -> None:
    manifest = load(series)
    assert ks.validate_manifest(manifest, series.name, exists_in(series)) == []
    assert ks.load_manifest(manifest, series.name, exists_in(series)) is manifest


def _broken(change: str) -> tuple[dict[str, Any], str]:
    """A lab manifest with one defect, and a piece the error message must contain."""
    m = copy.deepcopy(load(LAB))
    if change == "missing key":
        del m["layout"]
        return m, "manifest.layout: missing"
    if change == "unknown key":
        m["pin"] = {}
        return m, "manifest.pin: unknown key (accepted keys: format, name"
    if change == "unknown nested key":
        m["config"]["fragments"] = []
        return m, "config.fragments: unknown key (accepted keys: fragment, required, notes)"
    if change == "bad layout":
        m["layout"] = "rfc-v4"
        return m, "manifest.layout: 'rfc-v4' is not accepted (one of: mainline, rfc-v1"
    if change == "format as bool":
        m["format"] = True
        return m, "manifest.format: is bool, expected an integer"
    if change == "format 2":
        m["format"] = 2
        return m, "manifest.format: 2 is not accepted (only 1)"
    if change == "name differs":
        m["name"] = "other"
        return m, "must equal the directory name 'lab-perf-events-abi'"
    if change == "bad source type":
        m["source"]["type"] = "http"
        return m, "source.type: 'http' is not accepted (one of: b4, bundled, mbox)"
    if change == "bad base type":
        m["base"]["type"] = "svn"
        return m, "base.type: 'svn' is not accepted (one of: debian-package, git)"
    if change == "missing base key":
        del m["base"]["tarball"]
        return m, "base.tarball: missing (required)"
    if change == "no patches":
        m["patches"] = []
        return m, "manifest.patches: is empty"
    if change == "prefixed subject":
        m["patches"][0]["subject"] = "[PATCH] x"
        return m, "patches[0].subject: '[PATCH] x' is not accepted"
    if change == "bad patch id":
        m["patches"][1]["patch_id"] = "xyz"
        return m, "patches[1].patch_id: 'xyz' is not accepted (40 hex digits or null)"
    if change == "bundled unpinned":
        m["pins"]["mbox_sha256"] = None
        return m, "pins.mbox_sha256: is null, but a bundled series must be pinned"
    if change == "bad sha":
        m["pins"]["mbox_sha256"] = "abc"
        return m, "pins.mbox_sha256: 'abc' is not accepted"
    if change == "bad option":
        m["config"]["required"].append("DAMON")
        return m, "config.required: 'DAMON' is not accepted (a CONFIG_* name)"
    if change == "missing fragment":
        m["config"]["fragment"] = "nope.config"
        return m, "config.fragment: nope.config does not exist"
    if change == "missing mbox":
        m["source"]["path"] = "nope.mbox"
        return m, "source.path: nope.mbox does not exist"
    raise AssertionError(change)


CHANGES = [
    "missing key", "unknown key", "unknown nested key", "bad layout", "format as bool",
    "format 2", "name differs", "bad source type", "bad base type", "missing base key",
    "no patches", "prefixed subject", "bad patch id", "bundled unpinned", "bad sha",
    "bad option", "missing fragment", "missing mbox",
]  # fmt: skip


@pytest.mark.parametrize("change", CHANGES)
def test_invalid_manifest_names_key_and_what_is_accepted(change: str) -> None:
    manifest, expected = _broken(change)
    errors = ks.validate_manifest(manifest, LAB.name, exists_in(LAB))
    assert any(expected in e for e in errors), errors
    with pytest.raises(ks.SeriesError) as exc:
        ks.load_manifest(manifest, LAB.name, exists_in(LAB))
    assert expected in str(exc.value)
    assert exc.value.errors == errors


def test_non_mapping_manifest() -> None:
    assert ks.validate_manifest(["a"]) == ["manifest: expected a mapping, got list"]


def test_git_base_commit_must_be_40_hex() -> None:
    m = load(RFC)
    m["base"]["commit"] = "deadbeef"
    assert "base.commit: 'deadbeef' is not accepted" in " ".join(ks.validate_manifest(m))
    m["base"]["commit"] = "a" * 40
    assert ks.validate_manifest(m) == []


# Hostile manifests: every value that reaches git, b4, apt or a path is refused, exactly.
URL_ACCEPTED = (
    "an https://, http://, git://, ssh:// or file:// URL, an absolute path or "
    "user@host:path; never a leading '-'"
)
HOSTILE_RFC = [
    (
        ("source", "message_id"),
        "--help@x",
        "source.message_id: '--help@x' is not accepted (a bare Message-ID, local@domain, "
        "starting with a letter or digit, no angle brackets)",
    ),
    (
        ("source", "message_id"),
        "-o/tmp/x@example.org",
        "source.message_id: '-o/tmp/x@example.org' is not accepted (a bare Message-ID, "
        "local@domain, starting with a letter or digit, no angle brackets)",
    ),
    (
        ("base", "url"),
        "--upload-pack=touch /tmp/x;git-upload-pack",
        f"base.url: '--upload-pack=touch /tmp/x;git-upload-pack' is not accepted ({URL_ACCEPTED})",
    ),
    (
        ("base", "url"),
        "ext::sh -c touch% /tmp/x",
        f"base.url: 'ext::sh -c touch% /tmp/x' is not accepted ({URL_ACCEPTED})",
    ),
    (
        ("base", "url"),
        "relative/repo",
        f"base.url: 'relative/repo' is not accepted ({URL_ACCEPTED})",
    ),
    (
        ("base", "branch"),
        "--upload-pack=x",
        "base.branch: '--upload-pack=x' is not accepted (a branch, tag or commit: letters, "
        "digits, '.', '_', '/', '+', '-'; no leading '-' or '.', no '..')",
    ),
]


@pytest.mark.parametrize(
    ("where", "value", "error"), HOSTILE_RFC, ids=[f"{w[1]}={v}" for w, v, _ in HOSTILE_RFC]
)
def test_hostile_rfc_manifest_values_are_refused(
    where: tuple[str, str], value: str, error: str
) -> None:
    m = load(RFC)
    m[where[0]][where[1]] = value
    assert ks.validate_manifest(m, RFC.name) == [error]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("fragment", "../../../etc/passwd"),
        ("fragment", "/etc/passwd"),
        ("fragment", "-config"),
    ],
)
def test_manifest_paths_stay_in_the_series_folder(key: str, value: str) -> None:
    m = load(LAB)
    m["config"][key] = value
    assert ks.validate_manifest(m, LAB.name) == [
        f"config.{key}: {value!r} is not accepted (a relative path inside the series folder: "
        "no leading '/' or '-', no '..')"
    ]
    m = load(LAB)
    m["source"]["path"] = value
    assert ks.validate_manifest(m, LAB.name) == [
        f"source.path: {value!r} is not accepted (a relative path inside the series folder: "
        "no leading '/' or '-', no '..')"
    ]


def test_hostile_debian_base_values_are_refused() -> None:
    m = load(LAB)
    m["base"]["package"] = "-oDpkg::Pre-Invoke::=touch"
    m["base"]["tarball"] = "linux.tar.xz"
    assert ks.validate_manifest(m, LAB.name) == [
        "base.package: '-oDpkg::Pre-Invoke::=touch' is not accepted (a Debian package name: "
        "lower-case letters, digits, '.', '+', '-')",
        "base.tarball: 'linux.tar.xz' is not accepted (an absolute path)",
    ]


def test_an_error_never_quotes_a_huge_value() -> None:
    m = load(RFC)
    m["base"]["url"] = "-" + "x" * 100_000
    (error,) = ks.validate_manifest(m, RFC.name)
    assert len(error) < 300
    assert error.startswith("base.url: '-xxxx")


# --------------------------------------------------------------------------- mbox

LAB_SUBJECTS = [p["subject"] for p in load(LAB)["patches"]]
LAB_IDS = [p["patch_id"] for p in load(LAB)["patches"]]


def test_split_and_subjects_of_the_lab_mbox() -> None:
    assert len(ks.split_mbox(LAB_MBOX)) == 3
    assert ks.mbox_subjects(LAB_MBOX) == LAB_SUBJECTS


def test_subject_unfolding_and_encoded_words() -> None:
    mbox = (
        b"From 0 Mon Sep 17 00:00:00 2001\n"
        b"Subject: [RFC PATCH v3 1/4] mm/damon/core: add code borrowed from\n"
        b" report-based monitoring work\n\nbody\n"
        b"From 0 Mon Sep 17 00:00:00 2001\n"
        b"Subject: =?UTF-8?q?=5BPATCH=5D_mm/damon:_caf=C3=A9?=\n\nbody\n"
    )
    assert ks.mbox_subjects(mbox) == [
        "mm/damon/core: add code borrowed from report-based monitoring work",
        "mm/damon: caf\u00e9",
    ]


def test_verify_lab_mbox_passes_with_patch_ids() -> None:
    report = ks.verify_mbox(LAB_MBOX, load(LAB), lambda data: list(LAB_IDS))
    assert report.pinned
    assert report.sha256 == load(LAB)["pins"]["mbox_sha256"]
    assert report.subjects == LAB_SUBJECTS
    assert report.to_dict()["errors"] == []


def test_tampered_mbox_fails_on_sha256() -> None:
    tampered = LAB_MBOX.replace(b"nr_perf_events", b"nr_perf_eventz", 1)
    with pytest.raises(ks.SeriesError) as exc:
        ks.verify_mbox(tampered, load(LAB))
    digest = hashlib.sha256(tampered).hexdigest()
    assert f"mbox sha256 {digest} does not match pins.mbox_sha256" in str(exc.value)
    assert "lab-perf-events-abi" in str(exc.value)


def test_subject_mismatch_names_the_patch() -> None:
    manifest = load(LAB)
    manifest["patches"][1]["subject"] = "something else"
    with pytest.raises(ks.SeriesError, match="patch 2 subject 'mm/damon/sysfs: add sample/"):
        ks.verify_mbox(LAB_MBOX, manifest)


def test_patch_count_mismatch() -> None:
    manifest = load(LAB)
    manifest["patches"].append({"subject": "extra", "patch_id": None})
    with pytest.raises(ks.SeriesError, match="the mbox has 3 patches, the manifest lists 4"):
        ks.verify_mbox(LAB_MBOX, manifest)


def test_patch_id_mismatch_names_the_patch() -> None:
    ids = list(LAB_IDS)
    ids[2] = "0" * 40
    with pytest.raises(ks.SeriesError, match=r"patches\[2\] 'mm/damon/sysfs: add kdamonds"):
        ks.verify_mbox(LAB_MBOX, load(LAB), lambda data: ids)


def test_unpinned_series_refused_then_allowed_with_values_to_pin() -> None:
    manifest = load(LAB)
    manifest["pins"]["mbox_sha256"] = None
    for patch in manifest["patches"]:
        patch["patch_id"] = None
    with pytest.raises(ks.SeriesError, match="pin it to"):
        ks.verify_mbox(LAB_MBOX, manifest, lambda data: list(LAB_IDS))
    report = ks.verify_mbox(LAB_MBOX, manifest, lambda data: list(LAB_IDS), allow_unpinned=True)
    assert not report.pinned
    assert report.patch_ids == LAB_IDS
    assert report.sha256 == hashlib.sha256(LAB_MBOX).hexdigest()


def test_messages_that_differ_with_the_same_diffs_are_said_to() -> None:
    """A trailer added to a pinned series: sha256 differs, every patch-id matches."""
    tagged = LAB_MBOX.replace(
        b"Signed-off-by: damon-fleet lab",
        b"Reviewed-by: R <r@example.org>\nSigned-off-by: damon-fleet lab",
        1,
    )
    with pytest.raises(ks.SeriesError) as info:
        ks.verify_mbox(tagged, load(LAB), lambda data: list(LAB_IDS))
    assert info.value.errors == [
        f"mbox sha256 {hashlib.sha256(tagged).hexdigest()} does not match pins.mbox_sha256 "
        f"{load(LAB)['pins']['mbox_sha256']}",
        "every patch-id and subject matches: the diffs are the pinned ones, the messages "
        "differ (trailers collected from replies, an edited commit message or header); "
        "review them and re-pin pins.mbox_sha256",
    ]
    # A changed diff is named by its patch instead.
    ids = list(LAB_IDS)
    ids[1] = "1" * 40
    with pytest.raises(ks.SeriesError) as info:
        ks.verify_mbox(tagged, load(LAB), lambda data: ids)
    assert len(info.value.errors) == 2
    assert info.value.errors[1].startswith("patches[1] 'mm/damon/sysfs: add sample/primitives/")


def test_unpinned_keys() -> None:
    lab = load(LAB)
    assert ks.unpinned_keys(lab) == []
    rfc = load(RFC)
    assert ks.unpinned_keys(rfc) == [
        "pins.mbox_sha256",
        "patches[0].patch_id",
        "patches[1].patch_id",
        "patches[2].patch_id",
        "patches[3].patch_id",
        "base.commit",
    ]
    assert "base.commit" not in ks.unpinned_keys(rfc, pin_base=False)
    rfc["base"]["commit"] = "a" * 40
    rfc["patches"][2]["patch_id"] = "b" * 40
    assert ks.unpinned_keys(rfc) == [
        "pins.mbox_sha256",
        "patches[0].patch_id",
        "patches[1].patch_id",
        "patches[3].patch_id",
    ]
    # A debian-package base has no commit to pin.
    lab["pins"]["mbox_sha256"] = None
    assert ks.unpinned_keys(lab) == ["pins.mbox_sha256"]


def test_unpinned_message_of_a_bundled_series_without_patch_ids() -> None:
    lab = load(LAB)
    lab["pins"]["mbox_sha256"] = None
    report = ks.MboxReport("f" * 64, [], None, False)
    assert ks.unpinned_message(
        lab, "/m/manifest.yml", "/m/series.mbox", report, ["pins.mbox_sha256"]
    ) == (
        "series 'lab-perf-events-abi' is not pinned: /m/manifest.yml has null "
        "pins.mbox_sha256. Review /m/series.mbox (the mbox the build would apply; read it, "
        "`git am` it on the base), then pin it in /m/manifest.yml - pins.mbox_sha256: "
        + "f"
        * 64
        + ". Or build it once unpinned (allow_unpinned; kernel_build_allow_unpinned=true in the "
        "kernel_build role): the build manifest records the values to pin "
        "(inputs.series.mbox_sha256, inputs.series.patch_ids)"
    )


def test_parse_patch_ids() -> None:
    out = f"{'a' * 40} {'0' * 40}\n{'b' * 40} {'0' * 40}\n"
    assert ks.parse_patch_ids(out) == ["a" * 40, "b" * 40]


# --------------------------------------------------------------------------- git am

AM_HAND_EDITED = """\
Applying: mm/damon/sysfs: add sample/primitives directory (lab stand-in)
error: patch failed: mm/damon/sysfs.c:747
error: mm/damon/sysfs.c: patch does not apply
error: Did you hand edit your patch?
It does not apply to blobs recorded in its index.
hint: Use 'git am --show-current-patch=diff' to see the failed patch
Using index info to reconstruct a base tree...
Patch failed at 0001 mm/damon/sysfs: add sample/primitives directory (lab stand-in)
When you have resolved this problem, run "git am --continue".
"""

AM_CONFLICT = """\
Applying: mm/damon/sysfs: add sample/primitives directory (lab stand-in)
Applying: mm/damon/sysfs: add sample/primitives/perf_events directory (lab stand-in)
Using index info to reconstruct a base tree...
M\tmm/damon/sysfs.c
M\tDocumentation/ABI/testing/sysfs-kernel-mm-damon
Falling back to patching base and 3-way merge...
Auto-merging mm/damon/sysfs.c
CONFLICT (content): Merge conflict in mm/damon/sysfs.c
Auto-merging Documentation/ABI/testing/sysfs-kernel-mm-damon
CONFLICT (content): Merge conflict in Documentation/ABI/testing/sysfs-kernel-mm-damon
error: Failed to merge in the changes.
Patch failed at 0002 mm/damon/sysfs: add sample/primitives/perf_events directory (lab stand-in)
"""

AM_NO_BASE = """\
Applying: mm/damon/core: add common code for perf event based access check
error: mm/damon/ops-common.h: does not exist in index
error: patch failed: mm/damon/core.c:12
error: mm/damon/core.c: patch does not apply
error: sha1 information is lacking or useless (mm/damon/core.c).
error: could not build fake ancestor
Patch failed at 0002 mm/damon/core: add common code for perf event based access check
"""


@pytest.mark.parametrize(
    ("output", "subject", "files"),
    [
        (AM_HAND_EDITED, "mm/damon/sysfs: add sample/primitives directory (lab stand-in)",
         ["mm/damon/sysfs.c"]),
        (AM_CONFLICT,
         "mm/damon/sysfs: add sample/primitives/perf_events directory (lab stand-in)",
         ["mm/damon/sysfs.c", "Documentation/ABI/testing/sysfs-kernel-mm-damon"]),
        (AM_NO_BASE, "mm/damon/core: add common code for perf event based access check",
         ["mm/damon/core.c", "mm/damon/ops-common.h"]),
        ("Applying: only a subject\nfatal: something else\n", "only a subject", []),
        ("", None, []),
    ],
)  # fmt: skip
def test_parse_am_failure(output: str, subject: str | None, files: list[str]) -> None:
    failure = ks.parse_am_failure(output)
    assert failure.subject == subject
    assert sorted(failure.files) == sorted(files)


def test_am_failure_message_names_patch_and_files() -> None:
    message = ks.parse_am_failure(AM_CONFLICT).message("lab")
    assert message == (
        "series 'lab': patch 'mm/damon/sysfs: add sample/primitives/perf_events directory "
        "(lab stand-in)' does not apply; conflicting files: mm/damon/sysfs.c, "
        "Documentation/ABI/testing/sysfs-kernel-mm-damon"
    )
    assert "(git named no file)" in ks.AmFailure(None, []).message()


def test_applied_count() -> None:
    series = ["a", "b", "c"]
    assert ks.applied_count(["c", "b", "a", "base"], series) == 3
    assert ks.applied_count(["b", "a", "base"], series) == 0
    assert ks.applied_count(["base"], series) == 0
    assert ks.applied_count([], []) == 0


# --------------------------------------------------------------------------- .config

CONFIG = """\
#
# Automatically generated file; DO NOT EDIT.
CONFIG_DAMON=y
CONFIG_DAMON_VADDR=y
# CONFIG_DAMON_PADDR is not set
CONFIG_DAMON_SYSFS=m
CONFIG_LOCALVERSION=""
CONFIG_NR_CPUS=8
"""


def test_parse_kconfig() -> None:
    values = ks.parse_kconfig(CONFIG)
    assert values["CONFIG_DAMON"] == "y"
    assert values["CONFIG_DAMON_PADDR"] == "n"
    assert values["CONFIG_LOCALVERSION"] == '""'
    assert values["CONFIG_NR_CPUS"] == "8"


def test_dropped_options_names_each_with_its_value() -> None:
    required = ["CONFIG_DAMON", "DAMON_VADDR", "CONFIG_DAMON_PADDR", "CONFIG_DAMON_SYSFS",
                "CONFIG_PERF_EVENTS"]  # fmt: skip
    dropped = ks.dropped_options(CONFIG, required)
    assert dropped == [
        {"option": "CONFIG_DAMON_PADDR", "value": "n"},
        {"option": "CONFIG_DAMON_SYSFS", "value": "m"},
        {"option": "CONFIG_PERF_EVENTS", "value": "unset"},
    ]
    assert ks.dropped_message(dropped) == (
        "required kernel option(s) not =y after olddefconfig: CONFIG_DAMON_PADDR (is n), "
        "CONFIG_DAMON_SYSFS (is m), CONFIG_PERF_EVENTS (is unset)"
    )
    assert ks.dropped_options(CONFIG, ["CONFIG_DAMON"]) == []


def test_bad_required_option_name() -> None:
    with pytest.raises(ks.SeriesError, match="'damon' is not accepted"):
        ks.dropped_options(CONFIG, ["damon"])


# --------------------------------------------------------------------------- hash, LOCALVERSION

INPUTS: dict[str, Any] = {
    "recipe": 1,
    "base": {"type": "tarball"},
    "files": {"base tarball": "ab" * 32},
}


def test_inputs_hash_is_order_independent_and_sensitive() -> None:
    reordered = {"files": dict(INPUTS["files"]), "base": {"type": "tarball"}, "recipe": 1}
    assert ks.inputs_hash(INPUTS) == ks.inputs_hash(reordered)
    changed = copy.deepcopy(INPUTS)
    changed["files"]["base tarball"] = "cd" * 32
    assert ks.inputs_hash(INPUTS) != ks.inputs_hash(changed)
    expected = hashlib.sha256(json.dumps(INPUTS, sort_keys=True, separators=(",", ":")).encode())
    assert ks.inputs_hash(INPUTS) == expected.hexdigest()


def test_localversion() -> None:
    digest = "0123456789abcdef" * 4
    assert ks.localversion("lab-perf-events-abi", digest) == "-lab-perf-events-abi-01234567"
    assert ks.localversion("base", digest, 12) == "-base-0123456789ab"


@pytest.mark.parametrize("name", ["Lab", "lab_x", "", "-x", "a" * 41, "lab perf"])
def test_localversion_refuses_bad_names(name: str) -> None:
    with pytest.raises(ks.SeriesError, match="is not accepted"):
        ks.localversion(name, "0" * 64)


def test_localversion_refuses_a_short_hash() -> None:
    with pytest.raises(ks.SeriesError, match="not a hex digest"):
        ks.localversion("lab", "abc")


# --------------------------------------------------------------------------- build manifest


def _manifest(packages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    manifest: dict[str, Any] = ks.new_build_manifest(
        inputs=INPUTS,
        digest=ks.inputs_hash(INPUTS),
        localversion_value="-lab-0123abcd",
        kernel_release="6.12.117-lab-0123abcd",
        config_sha256="c" * 64,
        required=["CONFIG_DAMON"],
        packages=packages
        if packages is not None
        else [
            {"file": "linux-libc-dev.deb", "format": "deb", "sha256": "2" * 64, "size": 2},
            {"file": "linux-image.deb", "format": "deb", "sha256": "1" * 64, "size": 1},
        ],
        built_at="2026-01-01T00:00:00Z",
        build_seconds=421.04,
        build={"ccache": True},
    )
    return manifest


def test_build_manifest_round_trip() -> None:
    manifest = _manifest()
    text = ks.render_build_manifest(manifest)
    assert ks.parse_build_manifest(text) == manifest
    assert [p["file"] for p in manifest["packages"]] == ["linux-image.deb", "linux-libc-dev.deb"]
    assert manifest["build_seconds"] == 421.0
    assert manifest["format"] == 1
    assert set(manifest) == {
        "format", "inputs_hash", "localversion", "kernel_release", "inputs", "config",
        "packages", "built_at", "build_seconds", "build",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not json", "not JSON"),
        ('{"format": 2}', "format is not 1"),
        ('{"format": 1, "packages": []}', "missing key 'inputs_hash'"),
    ],
)
def test_parse_build_manifest_refuses(text: str, error: str) -> None:
    with pytest.raises(ks.SeriesError, match=error):
        ks.parse_build_manifest(text)


def test_build_is_current() -> None:
    manifest = _manifest()
    digest = ks.inputs_hash(INPUTS)
    hashes = {"linux-image.deb": "1" * 64, "linux-libc-dev.deb": "2" * 64}
    assert ks.build_is_current(manifest, digest, hashes.get) == (
        True,
        "inputs unchanged and every package matches its sha256",
    )
    assert ks.build_is_current(None, digest, hashes.get) == (False, "no build manifest")
    assert ks.build_is_current(manifest, "0" * 64, hashes.get) == (False, "inputs changed")
    missing = {"linux-image.deb": "1" * 64}
    assert ks.build_is_current(manifest, digest, missing.get) == (
        False,
        "package linux-libc-dev.deb is missing",
    )
    corrupt = dict(hashes, **{"linux-image.deb": "9" * 64})
    assert ks.build_is_current(manifest, digest, corrupt.get)[1] == (
        "package linux-image.deb does not match its sha256"
    )
    assert ks.build_is_current(_manifest([]), digest, hashes.get) == (
        False,
        "the manifest lists no package",
    )
