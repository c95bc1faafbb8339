"""The production kernel path, offline: ``b4`` by Message-ID onto a git base, end to end.

The ``kernel_build`` role builds a series whose manifest has the RFC v3's shape
(``source.type: b4``, ``base.type: git`` on ``damon/next``). ``b4 am`` fetches the thread
from the archive stand-in on 127.0.0.1 (``b4.midmask`` in the session's git config);
git fetches the base through ``file://``. The cases run in order, each on the state the
previous one left, as a user would meet them:

1. unpinned, not allowed: stops before any tree work, naming the manifest and the pins;
2. allowed: builds, and records the mbox sha256, the patch ids and the base commit;
3. pinned with those values, nothing changed: skipped;
4. one byte of a patch changed on the server: fails before ``git am``, naming the patch;
5. a new commit on the served branch: the pinned commit is built and the move is named
   (5a: the cached build of the pinned inputs is kept; 5b: without the cached build and
   base tree, the pinned commit is fetched and built again, on the warm ccache, which
   the manifest records).

The kernel is the lab kernel's (tinyconfig + kvm_guest.config + lab-kernel.config, the
shared ccache), so a build takes minutes.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from b4_offline_world import (
    ROOT,
    SERIES,
    World,
    git_base,
    missing_tools,
    offline_world,
    print_timings,
    timed,
)
from git_base import BRANCH, git
from kernel_build_play import kernel_build_play

# Fixtures of this module (imported: the folder has no conftest.py of its own).
__all__ = ["git_base", "offline_world", "print_timings"]
pytestmark = pytest.mark.skipif(
    bool(missing_tools()), reason=f"needs {', '.join(missing_tools())} (.ci/bootstrap --vm)"
)

PLAYBOOK = ROOT / ".venv" / "bin" / "ansible-playbook"
RECAP = re.compile(r"localhost\s*: ok=(\d+) changed=(\d+) unreachable=(\d+) failed=(\d+)")
# The lab fleet's build (inventories/lab/group_vars/all.yml), on this series and base.
LAB_VARS = {
    key: value
    for key, value in yaml.safe_load(
        (ROOT / "inventories" / "lab" / "group_vars" / "all.yml").read_text()
    ).items()
    if key.startswith("kernel_build_")
}
TREE_TASKS = ("Check out the base tree", "Fetch the base commit shallow", "Apply the series")


class Run:
    def __init__(self, proc: subprocess.CompletedProcess[str], result: Path) -> None:
        self.rc = proc.returncode
        # Whitespace collapsed: the callback wraps long messages.
        self.output = " ".join((proc.stdout + proc.stderr).split())
        recap = RECAP.findall(self.output)
        self.changed = int(recap[-1][1]) if recap else None
        self.failed = int(recap[-1][3]) if recap else None
        self.result: dict[str, Any] = json.loads(result.read_text()) if result.is_file() else {}

    def tail(self) -> str:
        return self.output[-5000:]


def build(world: World, label: str, **extra: Any) -> Run:
    """Run the kernel_build role on localhost as the lab does; time it."""
    n = len(world.state.setdefault("runs", []))
    result = world.work / f"result-{n}.json"
    play = kernel_build_play(result)
    variables = {
        **LAB_VARS,
        "kernel_build_series": SERIES,
        "kernel_build_patches_dir": str(world.patches_dir),
        "kernel_build_base_type": "series",
        "kernel_build_base_package": "",
        "kernel_build_cache_dir": str(world.cache),
        "kernel_build_install_dependencies": False,
        **extra,
    }
    (world.work / f"play-{n}.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    (world.work / f"vars-{n}.yml").write_text(yaml.safe_dump(variables))
    started = time.monotonic()
    proc = subprocess.run(
        [str(PLAYBOOK), str(world.work / f"play-{n}.yml"), "-e", f"@{world.work}/vars-{n}.yml"],
        cwd=ROOT, env=world.env, capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    run = Run(proc, result)
    world.state["runs"].append(run)
    timed(f"{label} (rc {run.rc}, changed {run.changed})", time.monotonic() - started)
    return run


def thread_url(world: World) -> str:
    return f"/all/{world.cover_id.replace('@', '%40')}/t.mbox.gz"


def test_1_unpinned_series_stops_before_any_tree_work(offline_world: World) -> None:
    world = offline_world
    run = build(world, "1 unpinned, not allowed: stop")
    assert run.rc == 2, run.tail()
    assert run.failed == 1, run.tail()
    manifest = str(world.manifest_path)
    fetched = world.cache / "fetch" / SERIES / f"{SERIES}.mbx"
    digest = hashlib.sha256(fetched.read_bytes()).hexdigest()
    assert (
        f"series '{SERIES}' is not pinned: {manifest} has null pins.mbox_sha256, "
        f"patches[0].patch_id, patches[1].patch_id, patches[2].patch_id, base.commit. "
        f"Review {fetched} (b4 am fetched it by Message-ID {world.cover_id}; read it, "
        f"`git am` it on the base), then pin it in {manifest} - pins.mbox_sha256: {digest}; "
        f"patches[0].patch_id: {world.patch_ids[0]}; patches[1].patch_id: {world.patch_ids[1]}; "
        f"patches[2].patch_id: {world.patch_ids[2]}; base.commit: the commit you reviewed it on "
        f"(`git ls-remote -- {world.url} refs/heads/{BRANCH}` gives the branch head)"
    ) in run.output, run.tail()
    assert "kernel_build_allow_unpinned=true" in run.output
    # b4 asked the archive for the thread by the cover letter's Message-ID.
    assert world.archive.requests == [thread_url(world)]
    # Nothing was resolved, fetched, unpacked or built.
    for task in ("Resolve the branch or tag", *TREE_TASKS):
        assert task not in run.output, task
    assert not (world.cache / "bases").exists()
    assert not (world.cache / "builds").exists()


def test_2_allowed_build_records_the_pins(offline_world: World) -> None:
    world = offline_world
    run = build(world, "2 unpinned, allowed: build", kernel_build_allow_unpinned=True)
    assert run.rc == 0, run.tail()
    result = run.result
    assert result["built"] is True
    assert result["unpinned"] == [
        "pins.mbox_sha256", "patches[0].patch_id", "patches[1].patch_id",
        "patches[2].patch_id", "base.commit",
    ]  # fmt: skip
    build_dir = Path(result["build_dir"])
    manifest = json.loads((build_dir / "manifest.json").read_text())
    kept = build_dir / "series.mbox"
    mbox_sha256 = hashlib.sha256(kept.read_bytes()).hexdigest()
    # Where the README says: inputs.series and inputs.base of the build manifest.
    assert manifest["inputs"]["series"]["mbox_sha256"] == mbox_sha256
    assert manifest["inputs"]["series"]["patch_ids"] == world.patch_ids
    assert manifest["inputs"]["base"] == {
        "type": "git", "url": world.url, "commit": world.base_commit,
    }  # fmt: skip
    assert manifest["build"]["base_commit"] == world.base_commit
    assert manifest["build"]["base_branch_head"] == world.base_commit
    assert manifest["build"]["series_pinned"] is False
    assert re.fullmatch(
        r"6\.12\.\d+-lab-perf-events-abi-b4-[0-9a-f]{8}", manifest["kernel_release"]
    )
    images = [p for p in result["packages"] if Path(p).name.startswith("linux-image-")]
    assert len(images) == 1 and Path(images[0]).is_file(), result["packages"]
    assert (
        f"pin in {world.manifest_path} - pins.mbox_sha256: {mbox_sha256}; "
        f"patches[].patch_id, in order: {', '.join(world.patch_ids)}; "
        f"base.commit: {world.base_commit}"
    ) in run.output, run.tail()
    assert "Apply the series with git am -3" in run.output
    world.state["first"] = manifest


def test_3_pinned_rebuild_with_nothing_changed_is_skipped(offline_world: World) -> None:
    world = offline_world
    first = world.state["first"]
    # Pin what the build recorded, as a user does after review.
    data = world.manifest()
    data["pins"]["mbox_sha256"] = first["inputs"]["series"]["mbox_sha256"]
    for patch, pid in zip(data["patches"], first["inputs"]["series"]["patch_ids"], strict=True):
        patch["patch_id"] = pid
    data["base"]["commit"] = first["inputs"]["base"]["commit"]
    world.write_manifest(data)

    run = build(world, "3 pinned, nothing changed: skip")
    assert run.rc == 0, run.tail()
    assert run.changed == 0, run.tail()
    assert run.result["built"] is False
    assert run.result["current"] is True
    assert run.result["unpinned"] == []
    assert run.result["inputs_hash"] == first["inputs_hash"]
    assert "up to date" in run.output
    assert "is not pinned" not in run.output
    for task in TREE_TASKS:
        assert task not in run.output, task
    # The thread was fetched again and checked against the pins.
    assert world.archive.requests.count(thread_url(world)) == 3


def test_4_tampered_thread_fails_before_git_am(offline_world: World) -> None:
    world = offline_world
    patch_msgid = list(world.archive.messages)[2]  # cover letter, 1/3, 2/3, 3/3
    original = world.archive.messages[patch_msgid]
    at = original.index(b"\n+static ") + len(b"\n+static ")
    tampered = original[:at] + b"S" + original[at + 1 :]
    assert len(tampered) == len(original) and tampered != original
    world.archive.replace(patch_msgid, tampered)
    try:
        run = build(world, "4 tampered thread: stop")
    finally:
        world.archive.replace(patch_msgid, original)
    assert run.rc == 2, run.tail()
    assert run.failed == 1, run.tail()
    subject = world.manifest()["patches"][1]["subject"]
    pinned = world.manifest()["patches"][1]["patch_id"]
    assert re.search(
        rf"patches\[1\] '{re.escape(subject)}': patch-id [0-9a-f]{{40}} does not match the "
        rf"pinned {pinned}",
        run.output,
    ), run.tail()
    assert re.search(
        r"mbox sha256 [0-9a-f]{64} does not match pins\.mbox_sha256 "
        + world.manifest()["pins"]["mbox_sha256"],
        run.output,
    ), run.tail()
    assert "Verify the series before anything is applied" in run.output
    for task in ("Resolve the branch or tag", *TREE_TASKS):
        assert task not in run.output, task


def test_5_moved_branch_builds_the_pinned_commit(offline_world: World) -> None:
    world = offline_world
    first = world.state["first"]
    # A new commit on the served branch: a file added on top of the pinned commit.
    index = world.work / "moved.index"
    env = {"GIT_DIR": str(world.served), "GIT_INDEX_FILE": str(index)}
    git("read-tree", world.base_commit, **env)
    (world.work / "MOVED").write_text("moved\n")
    blob = git("hash-object", "-w", "--", str(world.work / "MOVED"), **env)
    git("update-index", "--add", "--cacheinfo", f"100644,{blob},MOVED", **env)
    moved = git(
        "commit-tree", git("write-tree", **env), "-p", world.base_commit, "-m", "moved", **env
    )
    git("update-ref", f"refs/heads/{BRANCH}", moved, world.base_commit, **env)

    note = (
        f"base.branch {BRANCH} of {world.url} has moved: it is at {moved}, not at the pinned "
        f"base.commit {world.base_commit}. Building the pinned commit"
    )
    # Same inputs as the pinned build (the base is the pinned commit): skipped, and said.
    run = build(world, "5a moved branch, build cached: skip")
    assert run.rc == 0, run.tail()
    assert note in run.output, run.tail()
    assert run.result["built"] is False
    assert run.result["base_moved"] is True
    assert run.result["base_branch_head"] == moved
    assert run.result["inputs"]["base"]["commit"] == world.base_commit
    assert run.result["inputs_hash"] == first["inputs_hash"]
    world.state["moved"] = {"commit": moved, "note": note, "build_dir": run.result["build_dir"]}


def test_5b_moved_branch_rebuilds_the_pinned_commit_from_an_empty_cache(
    offline_world: World,
) -> None:
    world = offline_world
    first = world.state["first"]
    if "moved" not in world.state:
        pytest.skip("needs test 5 (the moved branch) first")
    moved, note = world.state["moved"]["commit"], world.state["moved"]["note"]
    # Without the cached build and base tree: fetched from the moved server, built again.
    shutil.rmtree(world.cache / "bases")
    shutil.rmtree(Path(world.state["moved"]["build_dir"]))
    run = build(world, "5b moved branch, empty build cache: rebuild")
    assert run.rc == 0, run.tail()
    assert note in run.output, run.tail()
    assert run.result["built"] is True
    manifest = json.loads(Path(run.result["manifest_path"]).read_text())
    assert manifest["inputs_hash"] == first["inputs_hash"]
    assert manifest["build"]["base_commit"] == world.base_commit
    assert manifest["build"]["base_branch_head"] == moved
    assert manifest["build"]["series_pinned"] is True
    assert manifest["config"]["sha256"] == first["config"]["sha256"]
    # The rebuild went through the ccache the first build filled (bootstrap installs it).
    assert manifest["build"]["ccache"] is (shutil.which("ccache") is not None)
    base_repo = next((world.cache / "bases").iterdir())
    assert git("rev-parse", "HEAD", cwd=base_repo) == world.base_commit
    assert "MOVED" not in git("ls-tree", "--name-only", "HEAD", cwd=base_repo).split()


def test_6_unknown_message_id_is_named(offline_world: World) -> None:
    world = offline_world
    data = world.manifest()
    saved = json.loads(json.dumps(data))
    data["source"]["message_id"] = "no-such-thread@damon-fleet.invalid"
    world.write_manifest(data)
    try:
        run = build(world, "6 unknown Message-ID: stop")
    finally:
        world.write_manifest(saved)
    assert run.rc == 2, run.tail()
    assert (
        f"series {SERIES}: b4 am could not fetch Message-ID no-such-thread@damon-fleet.invalid "
        "version 2 (exit 1; the archive is git config b4.midmask, default "
        "https://lore.kernel.org/all/%s): That message-id is not known."
    ) in run.output, run.tail()
    assert world.archive.requests[-1] == "/all/no-such-thread%40damon-fleet.invalid/t.mbox.gz"
    for task in ("Verify the series before anything is applied", *TREE_TASKS):
        assert task not in run.output, task
