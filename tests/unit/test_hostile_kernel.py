"""Hostile and broken input to the kernel build and install (issue 13, items 1, 2 and 4),
without running Ansible: the argv the roles pass to git is run with the hostile value
directly, to show ``--`` alone keeps it out of an option position, and the modules' input
checks run in process. The roles themselves run in
tests/integration/test_hostile_kernel_playbooks.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kernel_build_inputs
import kernel_series_apply
import pytest
import yaml
from conftest import ROOT
from module_harness import run_module

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


# --------------------------------------------------------------------------- `--` alone


@needs_git
def test_the_roles_ls_remote_argv_keeps_a_hostile_url_out_of_option_position(
    tmp_path: Path,
) -> None:
    """The argv of roles/kernel_build/tasks/base_git.yml, validation bypassed."""
    tasks = yaml.safe_load((ROOT / "roles/kernel_build/tasks/base_git.yml").read_text())
    (argv,) = [
        t["ansible.builtin.command"]["argv"]
        for t in tasks
        if "ansible.builtin.command" in t and "ls-remote" in t["ansible.builtin.command"]["argv"]
    ]
    marker = tmp_path / "MARKER"
    hostile = f"--upload-pack=touch {marker};git-upload-pack"
    values = {"{{ __kernel_build_git_url }}": hostile, "{{ __kernel_build_git_ref }}": "HEAD"}
    rendered = [values.get(a, a).replace("{{ __kernel_build_git_ref }}", "HEAD") for a in argv]
    assert rendered[:3] == ["git", "ls-remote", "--"]
    proc = subprocess.run(rendered, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert not marker.exists()
    # Without the "--" the same value runs its command: the test can tell.
    unsafe = [a for a in rendered if a != "--"]
    subprocess.run(unsafe, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert marker.exists()


def _commands(path: Path) -> list[tuple[str, Any, str]]:
    """(task name, argv or cmd, its vars as text) of every command/shell task, nested too."""
    found: list[tuple[str, Any, str]] = []

    def walk(tasks: list[dict[str, Any]]) -> None:
        for task in tasks or []:
            for key in ("block", "rescue", "always"):
                walk(task.get(key, []))
            for module in ("ansible.builtin.command", "ansible.builtin.shell"):
                if module in task:
                    args = task[module]
                    argv = args.get("argv", args.get("cmd"))
                    found.append((task["name"], argv, str(task.get("vars", {}))))

    walk(yaml.safe_load(path.read_text()))
    return found


TOOLS = ("git", "make", "b4", "dpkg-query", "__kernel_build_make", "__kernel_build_package_make")


@pytest.mark.parametrize(
    "path", sorted((ROOT / "roles/kernel_build/tasks").glob("*.yml")), ids=lambda p: p.name
)
def test_every_git_make_b4_call_of_the_role_ends_options(path: Path) -> None:
    """Each templated positional of git, make, b4, dpkg-query follows a `--`."""
    for name, command, task_vars in _commands(path):
        if isinstance(command, list):
            words = [str(w) for w in command]
            if words[0] in TOOLS and any("{{" in w for w in words):
                first = next(i for i, w in enumerate(words) if "{{" in w and not w.startswith("-"))
                if words[0] == "git" and words[1] in ("clone", "ls-remote"):
                    assert "--" in words[:first], (name, words)
                elif words[0] in ("b4", "dpkg-query"):
                    assert words.index("--") == len(words) - 2, (name, words)
        elif isinstance(command, str) and command.lstrip().startswith("{{"):
            # make argv built in Jinja: every target follows '--'.
            if any(tool in command for tool in TOOLS[4:]):
                assert "'--'" in command + task_vars, (name, command)
        elif isinstance(command, str):
            for line in command.splitlines():
                words = line.split()
                if words[:2] == ["git", "fetch"] or (words[:1] == ["git"] and '"$' in line):
                    if "init" in words and '"$' not in line:
                        continue
                    assert "--" in words, (name, line)
    # The make calls of config.yml and build.yml are argv expressions: each has a '--'.
    text = path.read_text()
    for expr in re.findall(r"__kernel_build_make \+ \[[^\]]*\]", text):
        assert "'--'" in expr, (path.name, expr)


# --------------------------------------------------------------------------- the modules


BAD_INPUTS = [
    (
        {"base_git_url": "-uhttps://x"},
        "kernel_build_base_git_url: '-uhttps://x' is not accepted (an https://, http://, "
        "git://, ssh:// or file:// URL, an absolute path or user@host:path; never a leading '-')",
    ),
    (
        {"base_git_url": "ssh://-oProxyCommand=touch%20x/repo"},
        "kernel_build_base_git_url: 'ssh://-oProxyCommand=touch%20x/repo' is not accepted (an "
        "https://, http://, git://, ssh:// or file:// URL, an absolute path or user@host:path; "
        "never a leading '-')",
    ),
    (
        {"base_git_url": "ssh://-oProxyCommand=x@host/repo"},
        "kernel_build_base_git_url: 'ssh://-oProxyCommand=x@host/repo' is not accepted (an "
        "https://, http://, git://, ssh:// or file:// URL, an absolute path or user@host:path; "
        "never a leading '-')",
    ),
    (
        {"base_git_url": "ssh://git@-oProxyCommand=x/repo"},
        "kernel_build_base_git_url: 'ssh://git@-oProxyCommand=x/repo' is not accepted (an "
        "https://, http://, git://, ssh:// or file:// URL, an absolute path or user@host:path; "
        "never a leading '-')",
    ),
    (
        {"base_git_url": "ext::sh -c touch% /tmp/x"},
        "kernel_build_base_git_url: 'ext::sh -c touch% /tmp/x' is not accepted (an https://, "
        "http://, git://, ssh:// or file:// URL, an absolute path or user@host:path; never a "
        "leading '-')",
    ),
    (
        {"base_git_url": "https://example.org/x\n--upload-pack=y"},
        "kernel_build_base_git_url: 'https://example.org/x\\n--upload-pack=y' is not accepted "
        "(an https://, http://, git://, ssh:// or file:// URL, an absolute path or "
        "user@host:path; never a leading '-')",
    ),
    (
        {"base_git_ref": "--output=/etc/passwd"},
        "kernel_build_base_git_ref: '--output=/etc/passwd' is not accepted (a branch, tag or "
        "commit: letters, digits, '.', '_', '/', '+', '-'; no leading '-' or '.', no '..')",
    ),
    (
        {"base_git_ref": "main..evil"},
        "kernel_build_base_git_ref: 'main..evil' is not accepted (a branch, tag or commit: "
        "letters, digits, '.', '_', '/', '+', '-'; no leading '-' or '.', no '..')",
    ),
    (
        {"config_make_targets": ["kvm_guest.config", "CC=$(shell touch /tmp/x)"]},
        "kernel_build_config_make_targets[1]: 'CC=$(shell touch /tmp/x)' is not accepted (a "
        "make target: letters, digits, '_', '.', '-'; no leading '-')",
    ),
    (
        {"config_target": "-j1000"},
        "kernel_build_config_target: '-j1000' is not accepted (a make target: letters, "
        "digits, '_', '.', '-'; no leading '-')",
    ),
    (
        {"arch": "x86_64 CC=$(shell id)"},
        "kernel_build_arch: 'x86_64 CC=$(shell id)' is not accepted (a kernel architecture: "
        "lower-case letters, digits, '_')",
    ),
    (
        {"series": "lab/../../etc"},
        "kernel_build_series: 'lab/../../etc' is not accepted (a folder name of "
        "kernel-patches/: lower-case letters, digits, '.', '+', '-', starting with a letter "
        "or digit (no '/'), or 'none')",
    ),
    (
        {"series": ".."},
        "kernel_build_series: '..' is not accepted (a folder name of kernel-patches/: "
        "lower-case letters, digits, '.', '+', '-', starting with a letter or digit (no "
        "'/'), or 'none')",
    ),
    (
        {"base_package": "-oAPT::Update::Pre-Invoke::=touch"},
        "kernel_build_base_package: '-oAPT::Update::Pre-Invoke::=touch' is not accepted (a "
        "Debian package name: lower-case letters, digits, '.', '+', '-')",
    ),
    (
        {"base_tarball": "linux.tar.xz"},
        "kernel_build_base_tarball: 'linux.tar.xz' is not accepted (an absolute path)",
    ),
    (
        {"config_overrides": ['CONFIG_SYSTEM_TRUSTED_KEYS="$(shell touch /tmp/x)"']},
        "kernel_build_config_overrides[0]: 'CONFIG_SYSTEM_TRUSTED_KEYS=\"$(shell touch "
        "/tmp/x)\"' is not accepted (CONFIG_NAME=value (no '$', '`' or '\\') or '# "
        "CONFIG_NAME is not set', one line)",
    ),
    (
        {"series": "x" * 41},
        f"kernel_build_series: '{'x' * 41}' is not accepted (at most 40 characters)",
    ),
]


@pytest.mark.parametrize("args,msg", BAD_INPUTS, ids=[str(i) for i in range(len(BAD_INPUTS))])
def test_kernel_build_inputs_names_the_input(args: dict[str, object], msg: str) -> None:
    done = run_module(kernel_build_inputs.main, args)
    assert done.failed
    assert done.result["msg"] == f"kernel_build: {msg}"


@pytest.mark.parametrize(
    "args",
    [
        {"series": "lab-perf-events-abi", "config_target": "tinyconfig", "arch": "x86_64"},
        {"series": "none", "config_make_targets": ["kvm_guest.config"]},
        {"base_git_url": "https://git.kernel.org/pub/scm/linux/kernel/git/sj/linux.git"},
        {"base_git_url": "git@github.com:torvalds/linux.git", "base_git_ref": "v6.12"},
        {"base_git_url": "/srv/git/linux", "base_git_ref": "damon/next"},
        {"base_git_url": "ssh://git@example.org:2222/linux.git"},
        {"base_git_url": "file:///srv/git/linux"},
        {"base_git_ref": "0123456789abcdef0123456789abcdef01234567"},
        {"base_package": "linux-source-6.12", "base_tarball": "/usr/src/linux.tar.xz"},
        {"config_overrides": ['CONFIG_LOCALVERSION=""', "# CONFIG_LOCALVERSION_AUTO is not set"]},
    ],
)
def test_kernel_build_inputs_accepts_real_values(args: dict[str, object]) -> None:
    done = run_module(kernel_build_inputs.main, args)
    assert not done.failed, done.result
    assert done.result["changed"] is False


def test_kernel_build_inputs_checks_the_manifest() -> None:
    manifest = yaml.safe_load((ROOT / "kernel-patches/damon-perf-rfc-v3/manifest.yml").read_text())
    manifest["source"]["message_id"] = "--help@x"
    done = run_module(
        kernel_build_inputs.main, {"series": "damon-perf-rfc-v3", "manifest": manifest}
    )
    assert done.failed
    assert done.result["msg"] == (
        "kernel_build: kernel-patches/damon-perf-rfc-v3/manifest.yml: series "
        "'damon-perf-rfc-v3': invalid manifest: source.message_id: '--help@x' is not "
        "accepted (a bare Message-ID, local@domain, starting with a letter or digit, no "
        "angle brackets)"
    )


@needs_git
def test_series_apply_reads_an_option_shaped_mbox_name_as_a_file(tmp_path: Path) -> None:
    """`git am -- <mbox>`: an mbox named like an option is still the mbox."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tree,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    tree = tmp_path / "tree"
    tree.mkdir()
    git("init", "-q")
    (tree / "a").write_text("a\n")
    git("add", "a")
    git("commit", "-q", "-m", "base")
    (tree / "a").write_text("b\n")
    git("commit", "-q", "-am", "change a")
    mbox = git("format-patch", "--stdout", "HEAD~1")
    git("reset", "-q", "--hard", "HEAD~1")
    (tree / "--signoff").write_text(mbox)
    done = run_module(
        kernel_series_apply.main,
        {"chdir": str(tree), "mbox": "--signoff", "subjects": ["change a"]},
    )
    assert not done.failed, done.result
    assert done.result["applied"] == ["change a"]
    assert "Signed-off-by" not in git("log", "-1", "--format=%B")
