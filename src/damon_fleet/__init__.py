"""damon-fleet: DAMON's perf-event based access check on a fleet, with Ansible.

Importing the package makes the collection's module_utils importable as
``ansible_collections.damon_fleet.fleet.plugins.module_utils.<domain>.<name>``, so the CLI
runs the very code the modules ship (see :mod:`damon_fleet._paths`).
"""

from damon_fleet._paths import register_module_utils

register_module_utils()
