"""pytest plugin for tests/mutation/run.py: the mutated module_utils come first.

mutmut runs the unit tier inside its ``mutants/`` copy, where the module_utils file under
test is at ``src/ansible_collections/damon_fleet/fleet/plugins/module_utils/<package>/
<name>.py``.  Putting that package folder first on the package's ``__path__`` makes
``import ansible_collections.damon_fleet.fleet.plugins.module_utils.<package>.<name>``
load it instead of ``plugins/module_utils/<package>/<name>.py``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

PACKAGE = "ansible_collections.damon_fleet.fleet.plugins.module_utils"
_MUTATED = Path.cwd() / "src" / Path(*PACKAGE.split("."))
for _folder in sorted(_MUTATED.iterdir()) if _MUTATED.is_dir() else []:
    if _folder.is_dir() and _folder.name.isidentifier():
        _package = importlib.import_module(f"{PACKAGE}.{_folder.name}")
        if str(_folder) not in _package.__path__:
            _package.__path__.insert(0, str(_folder))
