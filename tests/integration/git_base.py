"""A bare git repository of Debian's linux-source-6.12 tree, standing in for a kernel tree
on a git server (``damon/next`` of the RFC's manifest).

Made once per tarball and kept under ``<cache>/integration/`` (the controller's cache
root, ``damon_fleet_cache_root`` of playbooks/vars/contracts.yml), keyed by the tarball's
sha256 and :data:`RECIPE`: unpacking and committing 90 000 files takes minutes on 2
cores. The commit has a fixed author, committer and date, so the same tarball always gives
the same commit id. Tests serve a ``git clone --bare --shared`` of it (objects borrowed,
refs their own) through a ``file://`` URL, so moving its branch never touches the cached
repository.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

# Bump when the way the repository is made changes: a new one is made next to the old.
RECIPE = 1
BRANCH = "damon/next"
TAG = "v6.12-debian-base"
IDENTITY = {
    "GIT_AUTHOR_NAME": "damon-fleet lab",
    "GIT_AUTHOR_EMAIL": "lab@damon-fleet.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_NAME": "damon-fleet lab",
    "GIT_COMMITTER_EMAIL": "lab@damon-fleet.invalid",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}


def cache_root() -> Path:
    """The controller's cache root, as Ansible resolves the contract."""
    from damon_fleet.targets import controller_value

    return Path(controller_value("damon_fleet_cache_root"))


def git_env(**extra: str) -> dict[str, str]:
    """The environment for git calls of the fixtures: no user or system config."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GIT_") and key not in ("HOME", "XDG_CONFIG_HOME")
    }
    env.update(
        HOME="/nonexistent",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        LC_ALL="C",
        **IDENTITY,
    )
    env.update(extra)
    return env


def git(*args: str, cwd: Path | None = None, **env: str) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=git_env(**env), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout.strip()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_base(tarball: Path) -> tuple[Path, str, float]:
    """(bare repository, its commit, seconds spent making it: 0 when cached)."""
    key = f"{sha256_file(tarball)[:16]}-r{RECIPE}"
    folder = cache_root() / "integration"
    folder.mkdir(parents=True, exist_ok=True)
    repo = folder / f"linux-base-{key}.git"
    with (folder / f".linux-base-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (repo / "damon-fleet-complete").is_file():
            return repo, git("rev-parse", "--verify", f"refs/heads/{BRANCH}", cwd=repo), 0.0
        started = time.monotonic()
        work = folder / f"linux-base-{key}.tmp"
        shutil.rmtree(work, ignore_errors=True)
        src = work / "src"
        src.mkdir(parents=True)
        subprocess.run(
            ["tar", "-x", "-C", str(src), "--strip-components=1", "-f", str(tarball)], check=True
        )
        bare = work / "repo.git"
        git("init", "-q", "--bare", "--", str(bare))
        env = {
            "GIT_DIR": str(bare),
            "GIT_WORK_TREE": str(src),
            "GIT_INDEX_FILE": str(work / "index"),
        }
        # Debian's top-level .gitignore ignores everything: add with -f.
        git("-c", "core.looseCompression=1", "add", "-A", "-f", ".", cwd=src, **env)
        tree = git("write-tree", cwd=src, **env)
        commit = git(
            "commit-tree", tree, "-m", f"Linux {tarball.name} (Debian linux-source-6.12)", **env
        )
        git("update-ref", f"refs/heads/{BRANCH}", commit, **env)
        git("tag", "-a", "-m", f"base of {BRANCH}", TAG, commit, **env)
        git("symbolic-ref", "HEAD", f"refs/heads/{BRANCH}", **env)
        # One pack without deltas: quick to make, and a fetch reuses it as it is.
        git("-c", "pack.window=0", "-c", "pack.compression=1", "repack", "-a", "-d", "-q", **env)
        git("prune-packed", **env)
        (bare / "damon-fleet-complete").write_text(f"{commit}\n")
        shutil.rmtree(repo, ignore_errors=True)
        bare.rename(repo)
        shutil.rmtree(work, ignore_errors=True)
        return repo, commit, time.monotonic() - started


def serve_copy(base: Path, dest: Path) -> Path:
    """A bare clone of *base* sharing its objects: the repository a test serves and moves."""
    git("clone", "-q", "--bare", "--shared", "--", str(base), str(dest))
    return dest


if __name__ == "__main__":
    made = cached_base(Path("/usr/src/linux-source-6.12.tar.xz"))
    print(f"{made[0]} at {made[1]} ({made[2]:.1f}s)")
