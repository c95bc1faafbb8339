"""Turn one host into the perf values DAMON needs: gather, parse, classify.

Everything that touches the host goes through two callables passed in by the caller
(the Ansible module or the ``damon-fleet perf detect`` command), so that the logic here
is the same in both and testable without a host:

* ``run(argv, env, timeout) -> (rc, stdout, stderr)``
* ``read(path) -> str | None`` (``None`` when the file does not exist or is unreadable)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.spec import (
    PERF_EVENT_INFO_KEYS,
    PERF_EVENT_KEYS,
    SpecError,
    parse_perf_event,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.perf.mem_vv import (
    Kind,
    damon_events,
    parse,
    summarize,
)
from ansible_collections.damon_fleet.fleet.plugins.module_utils.perf.pmu import (
    Pmu,
    pmu_by_type,
    pmu_sysfs_summary,
    read_pmus,
)

Runner = Callable[[Sequence[str], Mapping[str, str], float], tuple[int, str, str]]
Reader = Callable[[str], "str | None"]

CLASSIFICATIONS = ("pebs", "ibs", "spe", "none")
DEFAULT_WORKLOAD = ("sleep", "0.2")
TIMEOUT_RC = 124  # what coreutils timeout(1) returns when the command ran out of time
EVENT_KEYS = ("type", "config", "config1", "config2")
_U64_MAX = (1 << 64) - 1


class PerfFactsError(ValueError):
    """A bad input (e.g. a pinned event): the message names it and what is accepted."""


@dataclass
class CpuInfo:
    vendor: str | None = None
    family: int | None = None
    model: int | None = None
    model_name: str | None = None
    hypervisor: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor,
            "family": self.family,
            "model": self.model,
            "model_name": self.model_name,
            "hypervisor": self.hypervisor,
        }


@dataclass
class Options:
    perf_path: str | None = "perf"
    workload: Sequence[str] = DEFAULT_WORKLOAD
    timeout: float = 30.0
    sysfs_root: str = "/sys"
    proc_root: str = "/proc"
    kind: Kind = "loads"
    output_path: str = "perf.data"
    pinned_events: Sequence[Mapping[str, Any]] | None = None
    uid: int = field(default_factory=lambda: os.geteuid())


def parse_cpuinfo(text: str | None) -> CpuInfo:
    """Vendor, family, model and name of the first CPU in ``/proc/cpuinfo``."""
    info = CpuInfo()
    if not text:
        return info
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if info.vendor is not None and not line.strip():
                break  # end of the first processor's paragraph
            continue
        key, value = key.strip(), value.strip()
        if key == "vendor_id" and info.vendor is None:
            info.vendor = value
        elif key == "cpu family" and info.family is None and value.isdigit():
            info.family = int(value)
        elif key == "model" and info.model is None and value.isdigit():
            info.model = int(value)
        elif key == "model name" and info.model_name is None:
            info.model_name = value
        elif key in ("flags", "Features"):
            info.hypervisor = info.hypervisor or "hypervisor" in value.split()
        elif key == "CPU implementer" and info.vendor is None:
            info.vendor = "ARM"
    return info


def _int_or_none(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def parse_perf_version(text: str) -> str | None:
    """``perf version 6.1.187`` -> ``6.1.187``."""
    match = re.search(r"perf version (\S+)", text)
    return match.group(1) if match else None


def normalize_events(events: Sequence[Mapping[str, Any]], source: str) -> list[dict[str, Any]]:
    """Validate events pinned in inventory; ints or ``0x`` strings, u64 range.

    The accepted keys are ``damon.spec``'s (the ``damon_perf`` role reads the same
    ``damon_perf_events``): the four perf values, optionally ``sample_freq`` and
    ``sample_phys_addr``, and the informational ``pmu`` and ``name``. The per-event
    sampling values are checked by ``damon.spec`` and passed through unchanged.
    """
    accepted = ", ".join((*PERF_EVENT_INFO_KEYS, *PERF_EVENT_KEYS))
    if not isinstance(events, Sequence) or isinstance(events, (str, bytes)):
        raise PerfFactsError(f"{source} must be a list of mappings with keys {accepted}")
    result: list[dict[str, Any]] = []
    for index, event in enumerate(events):
        where = f"{source}[{index}]"
        if not isinstance(event, Mapping):
            raise PerfFactsError(f"{where} must be a mapping with keys {accepted}; got {event!r}")
        unknown = sorted(set(event) - {*PERF_EVENT_INFO_KEYS, *PERF_EVENT_KEYS})
        if unknown:
            raise PerfFactsError(
                f"{where} has unknown key(s) {', '.join(map(str, unknown))}; accepted: {accepted}"
            )
        if "type" not in event or "config" not in event:
            raise PerfFactsError(f"{where} needs at least 'type' and 'config'")
        out: dict[str, Any] = {"pmu": event.get("pmu")}
        if out["pmu"] is not None and not isinstance(out["pmu"], str):
            raise PerfFactsError(f"{where}.pmu must be a PMU name string or null")
        for key in EVENT_KEYS:
            out[key] = _u64(event.get(key, 0), f"{where}.{key}")
        try:
            parsed = parse_perf_event(event, where)
        except SpecError as err:
            raise PerfFactsError("; ".join(err.problems)) from err
        if parsed.sample_freq is not None:
            out["sample_freq"] = parsed.sample_freq
        if parsed.sample_phys_addr is not None:
            out["sample_phys_addr"] = parsed.sample_phys_addr
        if event.get("name") is not None:
            if not isinstance(event["name"], str):
                raise PerfFactsError(f"{where}.name must be a string (a label) or null")
            out["name"] = event["name"]
        result.append(out)
    return result


def _u64(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise PerfFactsError(f"{where} must be an integer (decimal or 0x hex), got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value.strip(), 0)
        except ValueError:
            raise PerfFactsError(
                f"{where} must be an integer (decimal or 0x hex), got {value!r}"
            ) from None
    else:
        raise PerfFactsError(f"{where} must be an integer (decimal or 0x hex), got {value!r}")
    if not 0 <= number <= _U64_MAX:
        raise PerfFactsError(f"{where} must be between 0 and 2**64-1, got {number}")
    return number


def classify_pmu(pmu_name: str | None, event_type: int, cpu: CpuInfo) -> str:
    """Which hardware sampling facility a DAMON event comes from."""
    name = pmu_name or ""
    if name.startswith("ibs"):
        return "ibs"
    if name.startswith("arm_spe"):
        return "spe"
    if cpu.vendor == "GenuineIntel" and (event_type == 4 or name.startswith("cpu")):
        return "pebs"
    if cpu.vendor == "AuthenticAMD" and event_type != 4:
        return "ibs"
    if name.startswith("cpu") or event_type == 4:
        return "pebs"
    return "none"


def _core_pmu_name(pmus: Sequence[Pmu]) -> str | None:
    """``caps/pmu_name`` of the core PMU (``cpu``, or ``cpu_core`` on hybrids)."""
    names: list[str] = [p.pmu_name for p in pmus if p.name in ("cpu", "cpu_core") and p.pmu_name]
    names += [p.pmu_name for p in pmus if p.type == 4 and p.pmu_name]
    return names[0] if names else None


def format_event(event: Mapping[str, Any]) -> str:
    """``cpu: type=4 config=0x1cd config1=0x1f config2=0x0``."""
    values = " ".join(
        f"{key}={event[key]}" if key == "type" else f"{key}={event[key]:#x}" for key in EVENT_KEYS
    )
    return f"{event.get('pmu') or '?'}: {values}"


def summary_line(facts: Mapping[str, Any]) -> str:
    """One line: classification, then the event values or the reason."""
    events = facts["damon_perf_events"]
    if not events:
        return f"{facts['classification']} ({facts['reason']})"
    text = "; ".join(format_event(event) for event in events)
    pinned = " (pinned)" if facts["source"] == "pinned" else ""
    return f"{facts['classification']} {text}{pinned}"


def gather(run: Runner, read: Reader, opts: Options) -> dict[str, Any]:
    """Collect everything about this host and classify it (see module RETURN docs)."""
    facts = _gather(run, read, opts)
    facts["summary"] = summary_line(facts)
    return facts


def _gather(run: Runner, read: Reader, opts: Options) -> dict[str, Any]:
    cpu = parse_cpuinfo(read(f"{opts.proc_root}/cpuinfo"))
    pmus = read_pmus(opts.sysfs_root)
    sysctl = f"{opts.proc_root}/sys/kernel"
    facts: dict[str, Any] = {
        "source": "detected",
        "cpu": cpu.to_dict(),
        "pmu_name": _core_pmu_name(pmus),
        "pmus": pmu_sysfs_summary(pmus),
        "perf_path": opts.perf_path,
        "perf_version": None,
        "kernel_release": (read(f"{sysctl}/osrelease") or "").strip() or None,
        "perf_event_paranoid": _int_or_none(read(f"{sysctl}/perf_event_paranoid")),
        "perf_event_max_sample_rate": _int_or_none(read(f"{sysctl}/perf_event_max_sample_rate")),
        "classification": "none",
        "reason": None,
        "opened_events": [],
        "damon_perf_events": [],
        "perf_rc": None,
        "perf_error": None,
        "warnings": [],
    }

    if opts.pinned_events is not None:
        events = normalize_events(opts.pinned_events, "damon_perf_events")
        facts["source"] = "pinned"
        facts["damon_perf_events"] = events
        facts["reason"] = "damon_perf_events pinned in inventory; detection skipped"
        if events:
            first = events[0]
            facts["classification"] = classify_pmu(first["pmu"], first["type"], cpu)
        return facts

    if not opts.perf_path:
        facts["reason"] = (
            "perf is not installed (install the distribution's perf package, e.g. linux-perf "
            "on Debian, linux-tools-$(uname -r) on Ubuntu, perf on Fedora/RHEL; "
            "or set perf_detect_install_perf: true)"
        )
        return facts

    env = {"LC_ALL": "C", "LANG": "C"}
    rc, out, err = run([opts.perf_path, "--version"], env, min(opts.timeout, 10.0))
    facts["perf_version"] = parse_perf_version(out + err)
    if rc != 0 and facts["perf_version"] is None:
        facts["reason"] = f"'{opts.perf_path} --version' failed (rc={rc}): {(err or out).strip()}"
        facts["perf_rc"] = rc
        return facts

    argv = [opts.perf_path, "mem", "record", "-vv", "-o", opts.output_path, "--", *opts.workload]
    rc, out, err = run(argv, env, opts.timeout)
    facts["perf_rc"] = rc
    result = parse(err + "\n" + out if out else err)
    summary = summarize(result, opts.kind)
    facts["opened_events"] = summary["events"]
    facts["perf_error"] = result.error

    type_names = {pmu.type: pmu.name for pmu in pmus}
    chosen = []
    for event in damon_events(result, opts.kind):
        as_dict = event.to_dict()
        if as_dict["pmu"] is None:
            as_dict["pmu"] = type_names.get(as_dict["type"])
        chosen.append(as_dict)
    facts["damon_perf_events"] = chosen

    if chosen:
        first = chosen[0]
        facts["classification"] = classify_pmu(first["pmu"], first["type"], cpu)
        facts["warnings"].extend(_warnings(pmus, chosen))
        return facts

    facts["reason"] = _reason_for_none(rc, opts, summary.get("reason"), result.error, facts, pmus)
    return facts


def _warnings(pmus: Sequence[Pmu], chosen: Sequence[Mapping[str, Any]]) -> list[str]:
    warnings = []
    for event in chosen:
        pmu = pmu_by_type(pmus, event["type"])
        if pmu is not None and "mem-loads-aux" in pmu.events:
            warnings.append(
                f"PMU {pmu.name} has mem-loads-aux: perf opened the load event as a member of a "
                "{mem-loads-aux, mem-loads} group; the kernel may refuse a lone load-latency "
                "counter. damon_sysfs checks the kernel log for 'perf event create ... failed'."
            )
    return warnings


def _reason_for_none(
    rc: int,
    opts: Options,
    parser_reason: str | None,
    error: str | None,
    facts: Mapping[str, Any],
    pmus: Sequence[Pmu],
) -> str:
    paranoid = facts["perf_event_paranoid"]
    text = " ".join(filter(None, [parser_reason, error]))
    if rc == TIMEOUT_RC:
        return f"perf mem record did not finish within {opts.timeout:g} s"
    if "perf_event_paranoid" in text or (opts.uid != 0 and paranoid is not None and paranoid > 2):
        return (
            f"perf_event_paranoid is {paranoid}, too strict for uid {opts.uid}: run as root "
            "(become: true) or lower kernel.perf_event_paranoid"
        )
    has_mem_events = any(pmu.mem_events for pmu in pmus)
    if not has_mem_events and "not supported" in text:
        said = f"perf says {error.strip()!r}" if error else parser_reason
        vm = "; this host is a virtual machine" if facts["cpu"]["hypervisor"] else ""
        return f"no PMU memory events (no PEBS/IBS/SPE sampling): {said}{vm}"
    if parser_reason:
        return parser_reason
    if error:
        return f"the event failed to open: {error}"
    return f"unknown: perf mem record exited {rc} and no data-address event opened"
