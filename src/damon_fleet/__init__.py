"""damon-fleet: DAMON's perf-event based access check on a fleet, with Ansible.

Importing the package makes the repository's ``plugins/module_utils`` importable as
``ansible.module_utils.<name>``, so the CLI runs the very code the modules ship.
"""

from damon_fleet._paths import register_module_utils

register_module_utils()
