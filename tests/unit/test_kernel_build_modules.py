"""The kernel build modules' main() with patched exit_json/fail_json.

kernel_series_check runs over the repository's series (and temp copies), kernel_series_apply
over small real git repositories, kernel_config_check and kernel_build_manifest over temp
files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import kernel_build_manifest
import kernel_config_check
import kernel_series_apply
import kernel_series_check
import pytest
import yaml
from conftest import ROOT
from module_harness import run_module

LAB = ROOT / "kernel-patches" / "lab-perf-events-abi"
RFC = ROOT / "kernel-patches" / "damon-perf-rfc-v3"
HAS_GIT = shutil.which("git") is not None
needs_git = pytest.mark.skipif(not HAS_GIT, reason="needs git")


def copy_series(tmp_path: Path, source: Path = LAB) -> Path:
    dest = tmp_path / "patches" / source.name
    shutil.copytree(source, dest)
    return dest


def rewrite_manifest(series: Path, **pins: object) -> None:
    path = series / "manifest.yml"
    manifest = yaml.safe_load(path.read_text())
    manifest["pins"].update(pins)
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))


# --------------------------------------------------------------------------- kernel_series_check


def test_series_check_lab() -> None:
    done = run_module(kernel_series_check.main, {"path": str(LAB)})
    assert not done.failed, done.result
    result = done.result
    assert result["changed"] is False
    assert result["name"] == "lab-perf-events-abi"
    assert result["layout"] == "rfc-v3"
    assert result["stand_in"] is True
    assert result["source_type"] == "bundled"
    assert result["mbox"] == str(LAB / "series.mbox")
    assert result["mbox_sha256"] == hashlib.sha256((LAB / "series.mbox").read_bytes()).hexdigest()
    assert result["pinned"] is True
    assert len(result["subjects"]) == 3
    assert result["fragment"] == str(LAB / "config.fragment")
    assert "CONFIG_DAMON_SYSFS" in result["required"]
    assert result["base"]["package"] == "linux-source-6.12"
    if HAS_GIT:
        manifest = yaml.safe_load((LAB / "manifest.yml").read_text())
        assert result["patch_ids"] == [p["patch_id"] for p in manifest["patches"]]


def test_series_check_accepts_the_manifest_path_and_check_mode() -> None:
    done = run_module(
        kernel_series_check.main,
        {"path": str(LAB / "manifest.yml"), "patch_ids": False, "_ansible_check_mode": True},
    )
    assert not done.failed
    assert done.result["patch_ids"] is None


def test_series_check_tampered_mbox_fails_on_the_pin(tmp_path: Path) -> None:
    series = copy_series(tmp_path)
    mbox = series / "series.mbox"
    mbox.write_bytes(mbox.read_bytes().replace(b"nr_perf_events", b"nr_perf_eventz", 1))
    done = run_module(kernel_series_check.main, {"path": str(series)})
    assert done.failed
    assert "does not match pins.mbox_sha256" in done.result["msg"]
    assert done.result["mbox_sha256"] == hashlib.sha256(mbox.read_bytes()).hexdigest()


def test_series_check_invalid_manifest_lists_errors(tmp_path: Path) -> None:
    series = copy_series(tmp_path)
    path = series / "manifest.yml"
    manifest = yaml.safe_load(path.read_text())
    manifest["layout"] = "rfc-v9"
    manifest["extra"] = 1
    path.write_text(yaml.safe_dump(manifest))
    done = run_module(kernel_series_check.main, {"path": str(series)})
    assert done.failed
    assert "manifest.layout: 'rfc-v9' is not accepted" in done.result["msg"]
    assert any(e.startswith("manifest.extra: unknown key") for e in done.result["errors"])


def test_series_check_directory_name_must_match(tmp_path: Path) -> None:
    dest = tmp_path / "renamed"
    shutil.copytree(LAB, dest)
    done = run_module(kernel_series_check.main, {"path": str(dest)})
    assert done.failed
    assert "must equal the directory name 'renamed'" in done.result["msg"]


def test_series_check_b4_needs_an_mbox() -> None:
    done = run_module(kernel_series_check.main, {"path": str(RFC)})
    assert done.failed
    assert "fetched with b4" in done.result["msg"]
    assert "20260423004211.7037-1-akinobu.mita@gmail.com" in done.result["msg"]


def _b4_like_mbox(tmp_path: Path) -> Path:
    """An mbox with the RFC's four subjects (a stand-in for what `b4 am` writes)."""
    manifest = yaml.safe_load((RFC / "manifest.yml").read_text())
    parts = []
    for i, patch in enumerate(manifest["patches"], 1):
        parts.append(
            f"From 0 Mon Sep 17 00:00:00 2001\nFrom: A <a@b>\n"
            f"Subject: [RFC PATCH v3 {i}/4] {patch['subject']}\n\nbody\n---\n"
            f"diff --git a/f{i} b/f{i}\n--- a/f{i}\n+++ b/f{i}\n@@ -1 +1 @@\n-a\n+b\n"
        )
    mbox = tmp_path / "rfc.mbx"
    mbox.write_text("".join(parts))
    return mbox


@needs_git
def test_series_check_unpinned_b4_series(tmp_path: Path) -> None:
    mbox = _b4_like_mbox(tmp_path)
    done = run_module(kernel_series_check.main, {"path": str(RFC), "mbox": str(mbox)})
    assert done.failed
    digest = hashlib.sha256(mbox.read_bytes()).hexdigest()
    ids = _patch_ids(mbox)
    manifest = RFC / "manifest.yml"
    assert done.result["msg"] == (
        f"series 'damon-perf-rfc-v3' is not pinned: {manifest} has null pins.mbox_sha256, "
        "patches[0].patch_id, patches[1].patch_id, patches[2].patch_id, patches[3].patch_id, "
        f"base.commit. Review {mbox} (b4 am fetched it by Message-ID "
        "20260423004211.7037-1-akinobu.mita@gmail.com; read it, `git am` it on the base), then "
        f"pin it in {manifest} - pins.mbox_sha256: {digest}; "
        + "; ".join(f"patches[{i}].patch_id: {pid}" for i, pid in enumerate(ids))
        + "; base.commit: the commit you reviewed it on (`git ls-remote -- "
        "https://git.kernel.org/pub/scm/linux/kernel/git/sj/linux.git refs/heads/damon/next` "
        "gives the branch head). Or build it once unpinned (allow_unpinned; "
        "kernel_build_allow_unpinned=true in the kernel_build role): the build manifest "
        "records the values to pin (inputs.series.mbox_sha256, inputs.series.patch_ids, "
        "inputs.base.commit)"
    )
    assert done.result["unpinned"] == [
        "pins.mbox_sha256",
        "patches[0].patch_id",
        "patches[1].patch_id",
        "patches[2].patch_id",
        "patches[3].patch_id",
        "base.commit",
    ]
    assert done.result["errors"] == [f"{key} is null" for key in done.result["unpinned"]]
    # The base is not the manifest's: its null commit is not a pin the series lacks.
    done = run_module(
        kernel_series_check.main, {"path": str(RFC), "mbox": str(mbox), "pin_base": False}
    )
    assert done.failed
    assert done.result["unpinned"][-1] == "patches[3].patch_id"
    assert "base.commit" not in done.result["msg"]
    done = run_module(
        kernel_series_check.main,
        {"path": str(RFC), "mbox": str(mbox), "allow_unpinned": True},
    )
    assert not done.failed, done.result
    assert done.result["pinned"] is False
    assert done.result["mbox_sha256"] == digest
    assert done.result["patch_ids"] == ids


@needs_git
def test_series_check_pinned_value_mismatch_fails_even_when_unpinned_allowed(
    tmp_path: Path,
) -> None:
    """A pinned value is checked whatever allow_unpinned says; null ones are reported."""
    mbox = _b4_like_mbox(tmp_path)
    series = copy_series(tmp_path, RFC)
    manifest = yaml.safe_load((series / "manifest.yml").read_text())
    manifest["patches"][1]["patch_id"] = "0" * 40
    (series / "manifest.yml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    done = run_module(
        kernel_series_check.main,
        {"path": str(series), "mbox": str(mbox), "allow_unpinned": True},
    )
    assert done.failed
    assert done.result["errors"] == [
        f"patches[1] {manifest['patches'][1]['subject']!r}: patch-id "
        f"{_patch_ids(mbox)[1]} does not match the pinned {'0' * 40}"
    ]


def _patch_ids(mbox: Path) -> list[str]:
    out = subprocess.run(
        ["git", "patch-id", "--stable"], input=mbox.read_bytes(), capture_output=True, check=True
    ).stdout.decode()
    return [line.split()[0] for line in out.splitlines()]


def test_series_check_missing_manifest(tmp_path: Path) -> None:
    done = run_module(kernel_series_check.main, {"path": str(tmp_path)})
    assert done.failed
    assert "cannot read" in done.result["msg"]


# --------------------------------------------------------------------------- kernel_series_apply


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, Path]:
    """A repository at its base commit and an mbox of two patches made on top of it."""
    tree = tmp_path / "tree"
    (tree / "mm").mkdir(parents=True)
    git(tree, "init", "-q")
    (tree / "mm" / "sysfs.c").write_text("".join(f"line {i}\n" for i in range(1, 31)))
    (tree / "README").write_text("readme\n")
    git(tree, "add", ".")
    git(tree, "commit", "-q", "-m", "base")
    (tree / "mm" / "sysfs.c").write_text(
        (tree / "mm" / "sysfs.c").read_text().replace("line 10\n", "line ten\n")
    )
    git(tree, "commit", "-q", "-am", "mm/sysfs: first change")
    (tree / "README").write_text("readme, changed\n")
    git(tree, "commit", "-q", "-am", "docs: second change")
    mbox = tmp_path / "series.mbox"
    mbox.write_text(git(tree, "format-patch", "--stdout", "HEAD~2"))
    git(tree, "reset", "-q", "--hard", "HEAD~2")
    return tree, mbox


SUBJECTS = ["mm/sysfs: first change", "docs: second change"]


@needs_git
def test_series_apply_then_idempotent(repo: tuple[Path, Path]) -> None:
    tree, mbox = repo
    args = {"chdir": str(tree), "mbox": str(mbox), "subjects": SUBJECTS, "series": "t"}
    done = run_module(kernel_series_apply.main, {**args, "_ansible_check_mode": True})
    assert done.result["changed"] is True
    assert git(tree, "log", "--format=%s").splitlines() == ["base"]
    done = run_module(kernel_series_apply.main, args)
    assert not done.failed, done.result
    assert done.result["changed"] is True
    assert done.result["applied"] == SUBJECTS
    assert git(tree, "log", "--format=%s").splitlines() == [*reversed(SUBJECTS), "base"]
    assert done.result["head"] == git(tree, "rev-parse", "HEAD").strip()
    again = run_module(kernel_series_apply.main, args)
    assert again.result["changed"] is False
    assert again.result["applied"] == []


@needs_git
def test_series_apply_hand_edited_context_names_patch_and_file(repo: tuple[Path, Path]) -> None:
    tree, mbox = repo
    broken = mbox.with_name("broken.mbox")
    broken.write_text(mbox.read_text().replace("\n line 9\n", "\n line nine\n", 1))
    done = run_module(
        kernel_series_apply.main,
        {"chdir": str(tree), "mbox": str(broken), "subjects": SUBJECTS, "series": "t"},
    )
    assert done.failed
    assert done.result["failed_patch"] == "mm/sysfs: first change"
    assert done.result["conflicting_files"] == ["mm/sysfs.c"]
    assert done.result["msg"] == (
        "series 't': patch 'mm/sysfs: first change' does not apply; conflicting files: mm/sysfs.c"
    )
    # The am session was aborted: the tree is back at its base, with no am in progress.
    assert git(tree, "log", "--format=%s").splitlines() == ["base"]
    assert not (tree / ".git" / "rebase-apply").exists()


@needs_git
def test_series_apply_conflict_in_second_patch(repo: tuple[Path, Path]) -> None:
    tree, mbox = repo
    (tree / "README").write_text("readme, diverged\n")
    git(tree, "commit", "-q", "-am", "diverge")
    done = run_module(
        kernel_series_apply.main, {"chdir": str(tree), "mbox": str(mbox), "subjects": SUBJECTS}
    )
    assert done.failed
    assert done.result["failed_patch"] == "docs: second change"
    assert done.result["conflicting_files"] == ["README"]
    assert git(tree, "log", "--format=%s").splitlines() == ["diverge", "base"]


@needs_git
def test_series_apply_not_a_repository(tmp_path: Path) -> None:
    done = run_module(
        kernel_series_apply.main,
        {"chdir": str(tmp_path), "mbox": str(tmp_path / "x"), "subjects": ["a"]},
    )
    assert done.failed
    assert "is not a git tree" in done.result["msg"]


# --------------------------------------------------------------------------- kernel_config_check

CONFIG = "CONFIG_DAMON=y\nCONFIG_DAMON_SYSFS=y\n# CONFIG_DAMON_PADDR is not set\n"


def test_config_check_passes(tmp_path: Path) -> None:
    path = tmp_path / ".config"
    path.write_text(CONFIG)
    done = run_module(
        kernel_config_check.main, {"path": str(path), "required": ["CONFIG_DAMON", "DAMON_SYSFS"]}
    )
    assert not done.failed
    assert done.result["dropped"] == []
    assert done.result["values"] == {"CONFIG_DAMON": "y", "CONFIG_DAMON_SYSFS": "y"}
    assert done.result["config_sha256"] == hashlib.sha256(CONFIG.encode()).hexdigest()


def test_config_check_names_dropped_options(tmp_path: Path) -> None:
    path = tmp_path / ".config"
    path.write_text(CONFIG)
    args = {"path": str(path), "required": ["CONFIG_DAMON", "DAMON_PADDR", "CONFIG_PERF_EVENTS"]}
    done = run_module(kernel_config_check.main, args)
    assert done.failed
    assert "CONFIG_DAMON_PADDR (is n), CONFIG_PERF_EVENTS (is unset)" in done.result["msg"]
    assert [d["option"] for d in done.result["dropped"]] == [
        "CONFIG_DAMON_PADDR",
        "CONFIG_PERF_EVENTS",
    ]
    done = run_module(kernel_config_check.main, {**args, "fail_on_dropped": False})
    assert not done.failed
    assert len(done.result["dropped"]) == 2


def test_config_check_bad_option_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / ".config"
    path.write_text(CONFIG)
    done = run_module(kernel_config_check.main, {"path": str(path), "required": ["bad-name"]})
    assert done.failed
    assert "'bad-name' is not accepted" in done.result["msg"]
    done = run_module(kernel_config_check.main, {"path": str(tmp_path / "nope")})
    assert done.failed
    assert "cannot read" in done.result["msg"]


# --------------------------------------------------------------------------- kernel_build_manifest

INPUTS = {"recipe": 1, "base": {"type": "tarball", "name": "linux.tar.xz"}}


@pytest.fixture
def build_env(tmp_path: Path) -> dict[str, object]:
    tarball = tmp_path / "linux.tar.xz"
    tarball.write_bytes(b"tarball")
    return {
        "builds_dir": str(tmp_path / "builds"),
        "name": "lab",
        "inputs": INPUTS,
        "input_files": {"base tarball": str(tarball)},
    }


def _fake_build(build_dir: Path) -> Path:
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / "linux-image-6.12.117-lab_1_amd64.deb").write_bytes(b"image")
    (build_dir / "linux-headers-6.12.117-lab_1_amd64.deb").write_bytes(b"headers")
    (build_dir / "linux-upstream_1_amd64.buildinfo").write_bytes(b"not a package")
    config = build_dir / "config"
    config.write_text(CONFIG)
    return config


def test_manifest_query_present_query(build_env: dict[str, object], tmp_path: Path) -> None:
    plan = run_module(kernel_build_manifest.main, build_env).result
    assert plan["changed"] is False
    assert plan["current"] is False
    assert plan["reason"] == "no build manifest"
    assert plan["manifest"] is None
    digest = plan["inputs_hash"]
    assert plan["inputs"]["files"] == {"base tarball": hashlib.sha256(b"tarball").hexdigest()}
    assert plan["localversion"] == f"-lab-{digest[:8]}"
    assert plan["build_dir"] == str(tmp_path / "builds" / digest[:16])

    config = _fake_build(Path(plan["build_dir"]))
    present = {
        **build_env,
        "state": "present",
        "kernel_release": "6.12.117" + plan["localversion"],
        "config_path": str(config),
        "required": ["CONFIG_DAMON"],
        "started": 1000.0,
        "build": {"ccache": True},
    }
    check = run_module(kernel_build_manifest.main, {**present, "_ansible_check_mode": True})
    assert check.result["changed"] is True
    assert not Path(plan["manifest_path"]).exists()

    done = run_module(kernel_build_manifest.main, {**present, "_ansible_diff": True})
    assert not done.failed, done.result
    assert done.result["changed"] is True
    assert done.result["diff"]["before"] == ""
    written = json.loads(Path(plan["manifest_path"]).read_text())
    assert written == done.result["manifest"]
    assert written["inputs_hash"] == digest
    assert written["kernel_release"] == "6.12.117" + plan["localversion"]
    assert written["config"]["sha256"] == hashlib.sha256(CONFIG.encode()).hexdigest()
    assert [p["file"] for p in written["packages"]] == [
        "linux-headers-6.12.117-lab_1_amd64.deb",
        "linux-image-6.12.117-lab_1_amd64.deb",
    ]
    assert written["packages"][1]["sha256"] == hashlib.sha256(b"image").hexdigest()
    assert written["build_seconds"] > 0
    assert written["build"] == {"ccache": True}

    again = run_module(kernel_build_manifest.main, build_env).result
    assert again["current"] is True
    assert again["manifest"] == written

    # Writing again with the same inputs and packages keeps the recorded build.
    same = run_module(kernel_build_manifest.main, present).result
    assert same["changed"] is False

    # A corrupted package makes the build stale.
    (Path(plan["build_dir"]) / "linux-image-6.12.117-lab_1_amd64.deb").write_bytes(b"x")
    stale = run_module(kernel_build_manifest.main, build_env).result
    assert stale["current"] is False
    assert "does not match its sha256" in stale["reason"]


def test_manifest_inputs_change_the_hash(build_env: dict[str, object], tmp_path: Path) -> None:
    first = run_module(kernel_build_manifest.main, build_env).result
    Path(str(build_env["input_files"]["base tarball"])).write_bytes(b"other")  # type: ignore[index]
    second = run_module(kernel_build_manifest.main, build_env).result
    assert second["inputs_hash"] != first["inputs_hash"]
    renamed = run_module(kernel_build_manifest.main, {**build_env, "name": "other"}).result
    assert renamed["inputs_hash"] == second["inputs_hash"]
    assert renamed["localversion"].startswith("-other-")


def test_manifest_failures(build_env: dict[str, object], tmp_path: Path) -> None:
    missing = {**build_env, "input_files": {"fragment 0": str(tmp_path / "nope")}}
    done = run_module(kernel_build_manifest.main, missing)
    assert done.failed
    assert "input file 'fragment 0'" in done.result["msg"]
    done = run_module(kernel_build_manifest.main, {**build_env, "name": "Bad_Name"})
    assert done.failed
    assert "'Bad_Name' is not accepted" in done.result["msg"]
    plan = run_module(kernel_build_manifest.main, build_env).result
    Path(plan["build_dir"]).mkdir(parents=True)
    done = run_module(
        kernel_build_manifest.main,
        {**build_env, "state": "present", "kernel_release": "x", "config_path": "/nope"},
    )
    assert done.failed
    assert "no package matching" in done.result["msg"]


def _corrupt(digest: str) -> dict[str, str]:
    good = {
        "format": 1,
        "inputs_hash": digest,
        "kernel_release": "6.12.117-lab",
        "packages": [{"file": "linux-image-6.12.117-lab_1_amd64.deb", "sha256": "0" * 64}],
    }
    return {
        "not JSON": "{broken",
        "packages: 5": json.dumps({**good, "packages": 5}),
        "package without file": json.dumps({**good, "packages": [{"sha256": "0" * 64}]}),
        "package file is a path": json.dumps(
            {**good, "packages": [{"file": "../../../etc/passwd", "sha256": "0" * 64}]}
        ),
        "package not a mapping": json.dumps({**good, "packages": ["x.deb"]}),
        "package sha256 missing": json.dumps({**good, "packages": [{"file": "x.deb"}]}),
        "inputs_hash not a string": json.dumps({**good, "inputs_hash": 5}),
        "a list": json.dumps([good]),
        "nested too deeply": "[" * 100000 + "]" * 100000,
    }


CORRUPT_WHY = {
    "not JSON": "build manifest is not JSON: ",
    "packages: 5": "build manifest: packages is int, not a list",
    "package without file": "build manifest: packages[0].file is None, not a file name",
    "package file is a path": (
        "build manifest: packages[0].file is '../../../etc/passwd', not a file name"
    ),
    "package not a mapping": "build manifest: packages[0] is not a mapping",
    "package sha256 missing": "build manifest: packages[0].sha256 is not a string",
    "inputs_hash not a string": "build manifest: inputs_hash is int, not a string",
    "a list": "build manifest: format is not 1",
    "nested too deeply": "build manifest",
}


@pytest.mark.parametrize("case", sorted(CORRUPT_WHY))
def test_a_corrupt_cached_manifest_is_rebuilt_with_a_warning(
    case: str, build_env: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13 item 12: a corrupt cache entry is rebuilt, never a crash."""
    warnings: list[str] = []
    real_warn = kernel_build_manifest.AnsibleModule.warn

    def warn(self: kernel_build_manifest.AnsibleModule, warning: str) -> None:
        warnings.append(warning)
        real_warn(self, warning)

    monkeypatch.setattr(kernel_build_manifest.AnsibleModule, "warn", warn)
    plan = run_module(kernel_build_manifest.main, build_env).result
    build_dir = Path(plan["build_dir"])
    config = _fake_build(build_dir)
    Path(plan["manifest_path"]).write_text(_corrupt(plan["inputs_hash"])[case])
    again = run_module(kernel_build_manifest.main, build_env)
    assert not again.failed, again.result
    assert again.result["current"] is False
    assert again.result["manifest"] is None
    prefix = f"the cached build manifest {plan['manifest_path']} is corrupt ({CORRUPT_WHY[case]}"
    assert again.result["reason"].startswith(prefix), again.result["reason"]
    assert again.result["reason"].endswith("): rebuilding")
    assert warnings == [again.result["reason"]]
    # The build then records a fresh manifest over the corrupt one.
    done = run_module(
        kernel_build_manifest.main,
        {
            **build_env,
            "state": "present",
            "kernel_release": "6.12.117-lab",
            "config_path": str(config),
        },
    )
    assert not done.failed, done.result
    assert done.result["changed"] is True
    recorded = json.loads(Path(plan["manifest_path"]).read_text())
    assert [p["file"] for p in recorded["packages"]] == [
        "linux-headers-6.12.117-lab_1_amd64.deb",
        "linux-image-6.12.117-lab_1_amd64.deb",
    ]
    assert run_module(kernel_build_manifest.main, build_env).result["current"] is True
