"""How far a kernel build has got: objects built out of those expected, and an ETA.

The kernel_build role says where its build writes (a ``build_log`` event,
:mod:`damon_fleet.events`): the build log, the final config and the builds folder of
the cache. :class:`BuildWatch` reads the log as it grows and counts kbuild's quiet lines
of built objects (``  CC      mm/damon/core.o``, ``  AS``, ``  AR``, ``  LD``). The
count to expect comes from an earlier finished build in the same cache (its log, the one
with the same config, else the newest one scaled by the number of options), else an
estimate from the config alone (:data:`OBJECTS_PER_OPTION`); the display says which.

Counting and estimating are pure; :meth:`BuildWatch.poll` and :func:`expected_objects`
read files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A built object in kbuild's quiet output: two spaces, the step, the target.
OBJECT_LINE = re.compile(r"^  (?:CC|AS|AR|LD)(?: \[M\])? +\S", re.MULTILINE)
# A config option that is built in or a module.
OPTION_LINE = re.compile(r"^CONFIG_\w+=[ym]$", re.MULTILINE)
# Objects per option set to y or m, measured on the builds of this project's cache
# (6.12.117, tinyconfig + kvm_guest.config + the lab fragment): 1932 objects for 842
# options, 1873 for 798.
OBJECTS_PER_OPTION = 2.3
# A build that finished leaves its manifest beside its log (kernel_build_manifest).
FINISHED_MARK = "manifest.json"


def count_objects(text: str) -> int:
    """The objects built in *text*, a piece of a build log made of whole lines."""
    return len(OBJECT_LINE.findall(text))


def count_options(config: str) -> int:
    """The options of a kernel ``.config`` set to ``y`` or ``m``."""
    return len(OPTION_LINE.findall(config))


@dataclass(frozen=True)
class Expected:
    """How many objects the build should make, and where that figure comes from."""

    count: int
    source: str


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def expected_objects(log: Path, config: Path, builds_dir: Path | None) -> Expected | None:
    """The objects to expect of the build writing *log* with *config*.

    An earlier finished build in *builds_dir* with the same config gives its own count
    ("previous build"); else the newest finished one, scaled by the options of both
    configs ("previous build, scaled"); else the config alone ("estimate from .config").
    None when none of those can be read.
    """
    current = _read(config)
    if builds_dir is not None:
        found = []
        for other in builds_dir.glob(f"*/{log.name}"):
            if other.parent == log.parent or not (other.parent / FINISHED_MARK).is_file():
                continue
            try:
                found.append((other.stat().st_mtime, other))
            except OSError:
                continue
        scaled: Expected | None = None
        for _, other in sorted(found, reverse=True):
            text = _read(other)
            if text is None:
                continue
            objects = count_objects(text)
            if objects == 0:
                continue
            theirs = _read(other.parent / config.name)
            if current is not None and theirs == current:
                return Expected(objects, f"previous build {other.parent.name[:8]}")
            if scaled is None and current is not None and theirs is not None:
                options = count_options(theirs)
                if options:
                    count = round(objects * count_options(current) / options)
                    scaled = Expected(count, f"previous build {other.parent.name[:8]}, scaled")
        if scaled is not None:
            return scaled
    if current is None or count_options(current) == 0:
        return None
    return Expected(round(count_options(current) * OBJECTS_PER_OPTION), "estimate from .config")


def eta_seconds(built: int, expected: int, running: float) -> float | None:
    """Seconds left when *built* of *expected* objects took *running* seconds (None
    before the first object)."""
    if built <= 0 or running <= 0:
        return None
    return max(0.0, (expected - built) * running / built)


@dataclass
class BuildWatch:
    """One running build: its log, what to expect, how far it is."""

    log: Path
    started: float
    expected: Expected | None = None
    built: int = 0
    finished: bool = False
    _offset: int = 0
    _partial: str = field(default="", repr=False)

    @classmethod
    def from_event(cls, found: Mapping[str, Any], started: float) -> BuildWatch | None:
        """The watch of a ``build_log`` event; None without a log path, or when the
        build's config is not on this machine (a builder elsewhere: its log cannot be
        read here)."""
        log = found.get("log")
        if not isinstance(log, str) or not log:
            return None
        given = found.get("config")
        config = Path(given) if isinstance(given, str) and given else Path(log).with_name("config")
        if not config.is_file():
            return None
        builds = found.get("builds_dir")
        expected = expected_objects(
            Path(log), config, Path(builds) if isinstance(builds, str) and builds else None
        )
        return cls(log=Path(log), started=started, expected=expected)

    def feed(self, chunk: str) -> None:
        """Count the whole lines of *chunk* (the rest waits for the next chunk)."""
        text = self._partial + chunk
        whole, _, self._partial = text.rpartition("\n")
        if whole:
            self.built += count_objects(whole + "\n")

    def poll(self) -> None:
        """Read what the log gained since the last poll (nothing when it is missing: a
        build on another host, or one that has not started)."""
        if self.finished:
            return
        try:
            with self.log.open("rb") as stream:
                stream.seek(self._offset)
                data = stream.read()
        except OSError:
            return
        self._offset += len(data)
        self.feed(data.decode("utf-8", errors="replace"))

    def fraction(self) -> float:
        if self.expected is None or self.expected.count <= 0:
            return 0.0
        return min(1.0, self.built / self.expected.count)
