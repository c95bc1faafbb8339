"""Shared test set-up: the collection's module_utils importable (``damon_fleet``), and
a Hypothesis profile that is deterministic and writes nothing into the repository."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "plugins" / "modules"))

import damon_fleet  # noqa: E402,F401  (makes the collection's module_utils importable)

FIXTURES = ROOT / "tests" / "fixtures"

# No example database and the same examples on every run: a failure reproduces as it is.
# Hypothesis's other files (its Unicode tables) go to the system's temporary folder, not
# to .hypothesis/ in the working directory (the repository). Tests set their own bounded
# max_examples; this profile is loaded before any test module is imported, so every
# @settings(...) inherits from it.
set_hypothesis_home_dir(str(Path(tempfile.gettempdir()) / "damon-fleet-hypothesis"))
settings.register_profile("damon-fleet", database=None, derandomize=True, deadline=None)
settings.load_profile("damon-fleet")
