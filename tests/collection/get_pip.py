"""Stand-in for pip's get-pip.py bootstrap script, for ansible-test on machines that
reach the Python package index (through this machine's pip configuration) but not
ci-files.testing.ansible.com.

ansible-test runs its cached bootstrap script as ``__main__`` inside each fresh virtual
environment of a sanity test, with environment variables cleared, and get-pip's
arguments: the packages (``pip==X.Y``, ...) and ``--no-setuptools`` / ``--no-wheel``.
This installs them into that environment with the pip of the Python that runs the tests
(``--python``), which knows the package index and its certificates.
tests/collection/sanity writes it to ansible-test's cache path, HOST_PYTHON filled in,
when no bootstrap script is cached there.
"""

from __future__ import annotations

import subprocess
import sys

HOST_PYTHON = "@HOST_PYTHON@"
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


def main() -> int:
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    argv = [HOST_PYTHON, "-m", "pip", "--python", sys.executable, "install", "-q", *args]
    return subprocess.call(argv)


if __name__ == "__main__":
    sys.exit(main())
