"""The boot-time applier ``damon-fleet-apply``: load the rendered config, apply, print JSON.

:func:`load_config` reads and validates the rendered config file; :func:`applier_main` is
the command line (argparse) the damon_perf role's ``damon-fleet-apply`` script calls. The
engine is ``damon.engine``, the host adapters ``damon.adapters``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.adapters import (
    HostResolver,
    KernelLog,
    KmsgLog,
    RealSysfs,
    host_max_sample_rate,
    running_release,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.engine import (
    ApplyError,
    EvidenceSettings,
    _oserror,
    apply_spec,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.plan import ADMIN_ROOT
from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import (
    DamonConfig,
    DamonSpec,
    SpecError,
    load_config_text,
    parse_config,
    parse_settle_time,
)

MAX_CONFIG_BYTES = 1 << 20  # a rendered config or spec file


def spec_from_config(config: Mapping[str, Any], source: str = "config") -> DamonSpec:
    """A :class:`DamonSpec` from the rendered config (role input names); unknown keys
    are refused (see ``damon.spec.parse_config``)."""
    return parse_config(config, source).spec


def load_config(path: str) -> DamonConfig:
    """Read and validate the rendered config: JSON (a YAML subset, ``#`` comment lines
    allowed) or YAML, loaded strictly (duplicate keys refused, no base-60 numbers)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as err:
        raise SpecError([f"{path}: cannot read: {_oserror(err)}"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise SpecError([f"{path}: larger than {MAX_CONFIG_BYTES} bytes"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError([f"{path}: not UTF-8 text (byte {err.start})"]) from None
    return load_config_text(text, path)


def applier_main(
    argv: Sequence[str] | None = None,
    log: KernelLog | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """``damon-fleet-apply --config FILE [--check]``: apply at boot, print JSON.

    ``log`` (default ``/dev/kmsg``) and ``sleep`` are for tests.
    """
    parser = argparse.ArgumentParser(
        prog="damon-fleet-apply",
        description="Apply a damon-fleet DAMON configuration to the running kernel.",
    )
    parser.add_argument("--config", required=True, help="rendered config (JSON/YAML)")
    parser.add_argument("--check", action="store_true", help="show what would change")
    parser.add_argument("--root", default=ADMIN_ROOT, help=argparse.SUPPRESS)
    parser.add_argument(
        "--settle-time",
        default=None,
        help="seconds to wait after 'on'/'commit' before verifying",
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        settle = config.settle_time
        if args.settle_time is not None:
            settle = parse_settle_time(args.settle_time, "--settle-time")
        evidence = EvidenceSettings(
            config.evidence_window,
            config.fallback_policy,
            running_release() in config.stand_in_kernels,
        )
        result = apply_spec(
            config.spec,
            RealSysfs(args.root),
            args.root,
            log if log is not None else KmsgLog(),
            HostResolver(),
            check_mode=args.check,
            layout=config.layout,
            max_sample_rate=host_max_sample_rate(),
            settle_time=settle,
            sleep=sleep,
            evidence=evidence,
        )
    except (OSError, ValueError, SpecError, ApplyError, RuntimeError) as err:
        partial = getattr(err, "result", None)
        out: dict[str, Any] = {"failed": True, "msg": str(err)}
        if partial is not None:
            out.update(partial.as_dict())
            out["failed"] = True
        print(json.dumps(out, indent=2, sort_keys=True))
        print(f"damon-fleet-apply: error: {err}", file=sys.stderr)
        return 1
    out = result.as_dict()
    print(json.dumps(out, indent=2, sort_keys=True))
    for warning in result.warnings:
        print(f"damon-fleet-apply: warning: {warning}", file=sys.stderr)
    print(f"damon-fleet-apply: perf_effective {out['perf_summary']}", file=sys.stderr)
    return 0
