"""Fixtures of test_b4_offline.py: the production kernel path against local stand-ins.

Imported by the test module (not a conftest.py: the folder is shared, and its other
tests import the root conftest by name).

* :func:`git_base` - a bare git repository of Debian's linux-source-6.12 tree (made once,
  cached by its inputs under ``<cache>/integration/``, see ``git_base.py``);
* :func:`offline_world` - per session: a served copy of it (``file://``, branch
  ``damon/next`` and a tag), the lab series re-sent as a real thread (``git format-patch
  --cover-letter --thread``) and served by a mailing-list archive stand-in on 127.0.0.1
  (``archive_standin.py``), a git config that points ``b4`` at it, and a patches folder
  holding a manifest of the RFC v3 shape (``source.type: b4``, ``base.type: git``).

Nothing reads or writes the user's git or b4 configuration: ``GIT_CONFIG_GLOBAL`` names a
file of the session, ``GIT_CONFIG_NOSYSTEM`` is set and b4's cache and data go to the
session's folders.
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from archive_standin import Archive, message_id, split_format_patch
from git_base import BRANCH, TAG, cache_root, cached_base, git, serve_copy

ROOT = Path(__file__).resolve().parents[2]
TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
LAB_SERIES = ROOT / "kernel-patches" / "lab-perf-events-abi"
RFC_SERIES = ROOT / "kernel-patches" / "damon-perf-rfc-v3"
SERIES = "lab-perf-events-abi-b4"
MAILING_LIST = "damon@lists.linux.dev"
TIMINGS: dict[str, float] = {}


def missing_tools() -> list[str]:
    """What this machine lacks for the test (``.ci/bootstrap --vm`` installs it)."""
    return [
        what
        for what, ok in (
            (str(TARBALL), TARBALL.is_file()),
            ("b4", shutil.which("b4") is not None),
            ("make", shutil.which("make") is not None),
        )
        if not ok
    ]


@pytest.fixture(scope="module", autouse=True)
def print_timings() -> Iterator[None]:
    yield
    print("\nb4 offline timings:")
    for label, seconds in TIMINGS.items():
        print(f"  {seconds:8.1f}s  {label}")


def timed(label: str, seconds: float) -> None:
    TIMINGS[label] = seconds
    print(f"\n{label}: {seconds:.1f}s")


@pytest.fixture(scope="session")
def git_base() -> tuple[Path, str]:
    """(cached bare repository of the 6.12 tree, its commit)."""
    repo, commit, seconds = cached_base(TARBALL)
    timed("git base of linux-source-6.12 " + ("made" if seconds else "cached"), seconds)
    return repo, commit


def _cover(messages: list[bytes]) -> bytes:
    """The generated cover letter with the lab series' subject and text filled in."""
    parser = email.parser.BytesParser(policy=email.policy.compat32)
    cover = parser.parsebytes((LAB_SERIES / "series.cover").read_bytes())
    subject = " ".join(str(cover["Subject"]).split()).split("] ", 1)[1]
    text = str(cover.get_payload()).split("\ndamon-fleet lab (3):\n")[0].strip()
    return (
        messages[0]
        .replace(b"*** SUBJECT HERE ***", subject.encode())
        .replace(b"*** BLURB HERE ***", text.encode())
    )


def send_series(served: Path, work: Path) -> list[bytes]:
    """The lab series as a thread: applied on the served branch (a sparse checkout of the
    two folders it touches), then ``git format-patch --cover-letter --thread``."""
    tree = work / "sender"
    git("clone", "-q", "--no-checkout", "--shared", "--", str(served), str(tree))
    git("sparse-checkout", "set", "--cone", "mm/damon", "Documentation/ABI/testing", cwd=tree)
    git("checkout", "-q", BRANCH, cwd=tree)
    git("am", "-q", "--", str(LAB_SERIES / "series.mbox"), cwd=tree)
    out = git(
        "format-patch", "--stdout", "--cover-letter", "--thread", f"--to={MAILING_LIST}",
        "--subject-prefix=PATCH lab v2", "HEAD~3", cwd=tree,
    )  # fmt: skip
    messages = split_format_patch(out.encode() + b"\n")
    assert len(messages) == 4, [m[:200] for m in messages]
    return [_cover(messages), *messages[1:]]


@dataclass
class World:
    """One session's stand-ins and the role's inputs."""

    archive: Archive
    served: Path
    url: str
    base_commit: str
    cover_id: str
    patch_ids: list[str]
    patches_dir: Path
    cache: Path
    env: dict[str, str]
    work: Path
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def manifest_path(self) -> Path:
        return self.patches_dir / SERIES / "manifest.yml"

    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = yaml.safe_load(self.manifest_path.read_text())
        return data

    def write_manifest(self, data: dict[str, Any]) -> None:
        self.manifest_path.write_text(yaml.safe_dump(data, sort_keys=False))


def rfc_shaped_manifest(cover_id: str, url: str) -> dict[str, Any]:
    """The RFC v3 manifest with this thread and base: its keys, the lab series' patches."""
    rfc = yaml.safe_load((RFC_SERIES / "manifest.yml").read_text())
    lab = yaml.safe_load((LAB_SERIES / "manifest.yml").read_text())
    return {
        **rfc,
        "name": SERIES,
        "description": "The lab stand-in series sent as a thread, fetched with b4 from a "
        "local archive stand-in, on a git base served through file://.",
        "stand_in": True,
        "source": {"type": "b4", "message_id": cover_id, "version": 2},
        "base": {**rfc["base"], "url": url, "branch": BRANCH, "commit": None,
                 "notes": "A bare repository of Debian's linux-source-6.12 tree."},
        "patches": [{"subject": p["subject"], "patch_id": None} for p in lab["patches"]],
        "pins": {"mbox_sha256": None},
        "config": lab["config"],
    }  # fmt: skip


@pytest.fixture(scope="session")
def offline_world(
    git_base: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    started = time.monotonic()
    work = tmp_path_factory.mktemp("offline")
    base, commit = git_base
    served = serve_copy(base, work / "server" / "linux.git")
    assert git("rev-parse", f"refs/tags/{TAG}^{{commit}}", cwd=served) == commit
    messages = send_series(served, work)
    with Archive() as archive:
        ids = [archive.add(raw) for raw in messages]
        gitconfig = work / "gitconfig"
        gitconfig.write_text(
            f"[b4]\n\tmidmask = {archive.url}/all/%s\n\tlinkmask = {archive.url}/r/%s\n"
        )
        env = {
            key: value for key, value in os.environ.items() if not key.startswith(("GIT_", "XDG_"))
        }
        env.update(
            GIT_CONFIG_GLOBAL=str(gitconfig),
            GIT_CONFIG_NOSYSTEM="1",
            XDG_CACHE_HOME=str(work / "xdg-cache"),
            XDG_CONFIG_HOME=str(work / "xdg-config"),
            XDG_DATA_HOME=str(work / "xdg-data"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
        )
        patches = work / "patches"
        (patches / SERIES).mkdir(parents=True)
        shutil.copy(LAB_SERIES / "config.fragment", patches / SERIES / "config.fragment")
        url = f"file://{served}"
        # The build cache of the session, with the shared ccache: the lab kernel's objects.
        cache = work / "cache"
        cache.mkdir()
        shared_ccache = cache_root() / "ccache"
        shared_ccache.mkdir(parents=True, exist_ok=True)
        (cache / "ccache").symlink_to(shared_ccache)
        lab_ids = [
            p["patch_id"]
            for p in yaml.safe_load((LAB_SERIES / "manifest.yml").read_text())["patches"]
        ]
        world = World(
            archive=archive, served=served, url=url, base_commit=commit, cover_id=ids[0],
            patch_ids=lab_ids, patches_dir=patches, cache=cache, env=env, work=work,
        )  # fmt: skip
        world.write_manifest(rfc_shaped_manifest(ids[0], url))
        assert message_id(messages[0]) == ids[0]
        timed("stand-ins (served base, thread, archive, manifest)", time.monotonic() - started)
        yield world
    # The session's base repository (a shallow fetch, hundreds of MB): not kept.
    shutil.rmtree(cache / "bases", ignore_errors=True)
