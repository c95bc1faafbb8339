"""Shared test set-up: project module_utils importable as ``ansible.module_utils.*``."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "plugins" / "modules"))

import damon_fleet  # noqa: E402,F401  (registers plugins/module_utils)

FIXTURES = ROOT / "tests" / "fixtures"
