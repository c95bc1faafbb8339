"""damon.install: compare and write only what differs (in tmp_path), check mode, diff."""

from __future__ import annotations

import os
import stat

import pytest
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.install import (
    InstallError,
    WantedDir,
    WantedFile,
    ensure_directory,
    ensure_file,
    install,
    parse_mode,
    parse_wanted,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import SpecError, quote

UID, GID = os.getuid(), os.getgid()


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_parse_mode_accepts_octal_strings_only():
    assert parse_mode("0644", "m") == 0o644
    assert parse_mode("755", "m") == 0o755
    assert parse_mode("01777", "m") == 0o1777
    for bad in ("0648", "rw-r--r--", 644, "", "0o644", "00644x"):
        with pytest.raises(SpecError) as info:
            parse_mode(bad, "files[0].mode")
        assert info.value.problems == [
            f"files[0].mode: {quote(bad)} is not an octal mode string such as '0644' or '0755'"
        ]


def test_parse_wanted_reports_every_problem_at_once():
    with pytest.raises(SpecError) as info:
        parse_wanted(
            [{"path": "relative", "mode": "0755"}],
            [
                {"path": "/etc/a", "content": "x", "mode": "0644"},
                {"path": "/etc/a", "content": "y", "mode": "0644"},
                {"path": "/etc/../b", "content": "y", "mode": "0644"},
                {"path": "/etc/c", "content": "y", "mode": "0999"},
            ],
        )
    problems = info.value.problems
    assert len(problems) == 4, problems
    assert problems[0].startswith("directories[0].path: 'relative' is not an absolute path")
    assert problems[1] == "files[1].path: '/etc/a' is given twice"
    assert problems[2].startswith("files[2].path: '/etc/../b' is not an absolute path")
    assert problems[3].startswith("files[3].mode: '0999' is not an octal mode")


def test_a_new_file_is_written_with_its_mode(tmp_path):
    path = str(tmp_path / "f")
    change = ensure_file(WantedFile(path, b"one\n", 0o640), UID, GID, check_mode=False)
    assert change.changed and change.created and change.reasons == []
    assert (tmp_path / "f").read_bytes() == b"one\n"
    assert mode_of(path) == 0o640
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary left


def test_an_identical_file_is_not_touched(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"same\n")
    os.chmod(path, 0o644)
    before = os.stat(path)
    change = ensure_file(WantedFile(str(path), b"same\n", 0o644), UID, GID, check_mode=False)
    assert not change.changed
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_content_and_mode_differences_are_reported_and_fixed(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old\n")
    os.chmod(path, 0o600)
    change = ensure_file(WantedFile(str(path), b"new\n", 0o644), UID, GID, check_mode=False)
    assert change.reasons == ["content", "mode"]
    assert path.read_bytes() == b"new\n" and mode_of(path) == 0o644
    assert change.diff() == {
        "before_header": str(path),
        "after_header": str(path),
        "before": f"old\n# {path}: mode differ\n",
        "after": f"new\n# {path}: mode set\n",
    }


def test_a_mode_only_difference_keeps_the_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    os.chmod(path, 0o600)
    inode = os.stat(path).st_ino
    change = ensure_file(WantedFile(str(path), b"x", 0o755), UID, GID, check_mode=False)
    assert change.reasons == ["mode"]
    assert mode_of(path) == 0o755 and os.stat(path).st_ino == inode


def test_an_owner_difference_is_seen(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    os.chmod(path, 0o644)
    change = ensure_file(WantedFile(str(path), b"x", 0o644), UID + 1, GID, check_mode=True)
    assert change.reasons == ["owner"]


def test_check_mode_changes_nothing_and_predicts_the_real_run(tmp_path):
    lib = tmp_path / "usr" / "lib" / "damon-fleet"
    existing = tmp_path / "apply"
    existing.write_text("old\n")
    os.chmod(existing, 0o755)
    dirs = [WantedDir(str(lib), 0o755)]
    files = [
        WantedFile(str(lib / "damon_spec.py"), b"code\n", 0o644),
        WantedFile(str(existing), b"new\n", 0o755),
    ]
    listing = sorted(str(p) for p in tmp_path.rglob("*"))
    predicted = install(dirs, files, UID, GID, check_mode=True)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == listing
    assert existing.read_text() == "old\n"
    done = install(dirs, files, UID, GID, check_mode=False)
    assert [c.as_dict() for c in predicted] == [c.as_dict() for c in done]
    assert [(c.path, c.created, c.reasons) for c in done] == [
        (str(lib), True, []),
        (str(lib / "damon_spec.py"), True, []),
        (str(existing), False, ["content"]),
    ]
    assert (lib / "damon_spec.py").read_text() == "code\n" and mode_of(lib) == 0o755
    assert mode_of(tmp_path / "usr") == 0o755  # missing parents get the mode too
    assert [c.changed for c in install(dirs, files, UID, GID, check_mode=False)] == [False] * 3


def test_a_directory_mode_is_fixed(tmp_path):
    path = tmp_path / "d"
    path.mkdir(mode=0o700)
    change = ensure_directory(WantedDir(str(path), 0o755), UID, GID, check_mode=False)
    assert change.reasons == ["mode"] and mode_of(path) == 0o755
    assert change.diff()["after"] == f"{path}: mode set\n"


def test_a_file_where_a_directory_should_be_fails(tmp_path):
    (tmp_path / "d").write_text("")
    with pytest.raises(InstallError, match=r"/d: exists and is not a directory"):
        ensure_directory(WantedDir(str(tmp_path / "d"), 0o755), UID, GID, check_mode=True)
    (tmp_path / "e").mkdir()
    with pytest.raises(InstallError, match=r"/e: exists and is not a regular file"):
        ensure_file(WantedFile(str(tmp_path / "e"), b"", 0o644), UID, GID, check_mode=True)


def test_a_missing_parent_fails_with_the_path(tmp_path):
    path = str(tmp_path / "none" / "f")
    with pytest.raises(InstallError, match=rf"^{path}: cannot write: No such file or directory"):
        ensure_file(WantedFile(path, b"x", 0o644), UID, GID, check_mode=False)


def test_a_new_file_diff_shows_its_content(tmp_path):
    change = ensure_file(WantedFile(str(tmp_path / "n"), b"a\nb\n", 0o644), UID, GID, True)
    assert change.diff()["before"] == "" and change.diff()["after"] == "a\nb\n"
