"""pytest plugin for tests/mutation/run.py: the mutated module_utils come first.

mutmut runs the unit tier inside its ``mutants/`` copy, where the module_utils under test
are at ``src/ansible/module_utils/<name>.py``.  Putting that folder first on
``ansible.module_utils.__path__`` makes ``import ansible.module_utils.<name>`` load them
instead of ``plugins/module_utils/<name>.py``.
"""

from __future__ import annotations

from pathlib import Path

import ansible.module_utils

_MUTATED = Path.cwd() / "src" / "ansible" / "module_utils"
if _MUTATED.is_dir() and str(_MUTATED) not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.insert(0, str(_MUTATED))
