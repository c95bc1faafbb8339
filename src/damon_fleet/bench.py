"""The A/B bench of a run: ``bench.json`` from the runner events, its tables and chart.

Pure functions but :func:`render_html`'s chart (drawn with matplotlib, in memory):

* :func:`from_events` reads what the ``damon_bench`` role reports per host (its
  ``set_stats`` data ``{"damon_bench": {...}}``, and its failures) into the
  ``bench.json`` document (format :data:`BENCH_FORMAT`, schema in
  roles/damon_bench/README.md, checked by ``damon.bench.bench_problem``);
* :func:`summary` folds the hosts into the fleet summary (median B/A ratios, the hosts
  where B is worse, the decisions);
* :func:`render_table`, :func:`render_markdown` print the letter-style A/B table per host;
  :func:`render_html` adds a chart, per host A against B for each measurement.
"""

from __future__ import annotations

import html
import io
import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ansible_collections.damon_fleet.fleet.plugins.module_utils.damon.bench import (
    BENCH_FORMAT,
    bench_problem,
    format_latency,
    ratio,
)

BENCH_ROLE = "damon_bench"
FAILED_TASK = "Fail with what went wrong during the bench"
# B is "worse" on a host in a measurement when B/A is beyond this margin (noise).
WORSE_MARGIN = 0.05
LAB_NOTE = (
    "lab figures: QEMU TCG guests without PEBS; arm B runs the lab stand-in series "
    "(kernel-patches/lab-perf-events-abi), whose perf events (software cpu-clock) are "
    "real but only counted: the samples do not replace the accessed-bit checks"
)
STAND_IN_NOTE = "stand-in kernel: perf samples are counted, not used by DAMON"

# (key, label, unit, higher_is_worse) of the per-arm figures compared A against B.
MEASUREMENTS: tuple[tuple[str, str, str, bool], ...] = (
    ("kdamond_cpu_percent", "kdamond CPU", "% of a CPU", True),
    ("kdamond_cpu_ms_per_aggr", "kdamond CPU per aggregation", "ms", True),
    ("nmi_delta", "NMIs during the arm", "", True),
    ("reports_per_second", "total_reports rate", "/s", False),
    ("workload.ops_per_second", "workload throughput", "accesses/s", False),
    ("workload.batch_latency_us_avg", "workload batch latency", "us", True),
)


def _get(arm: Mapping[str, Any] | None, key: str) -> Any:
    value: Any = arm or {}
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _bench_result(res: Any) -> Mapping[str, Any] | None:
    """The role's ``set_stats`` data ``{"damon_bench": {...}}`` of a task result."""
    stats = res.get("ansible_stats") if isinstance(res, Mapping) else None
    data = stats.get("data") if isinstance(stats, Mapping) else None
    found = data.get("damon_bench") if isinstance(data, Mapping) else None
    if not isinstance(found, Mapping) or not isinstance(found.get("arms"), Mapping):
        return None
    return found


def _role_of(data: Mapping[str, Any]) -> str:
    return str(data.get("role") or "")


def from_events(run_id: str | None, events: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """``bench.json`` of a run, or None when no host ran the bench."""
    hosts: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    seen = False
    for event in events:
        data = event.get("event_data") or {}
        if not isinstance(data, Mapping):
            continue
        kind = event.get("event")
        if _role_of(data) != BENCH_ROLE or kind not in (
            "runner_on_ok",
            "runner_on_failed",
            "runner_on_unreachable",
        ):
            continue
        seen = True
        host = data.get("host")
        if not isinstance(host, str):
            continue
        res = data.get("res")
        if kind == "runner_on_ok":
            found = _bench_result(res)
            if found is not None:
                hosts[host] = _host_entry(host, found)
        elif kind in ("runner_on_failed", "runner_on_unreachable") and not data.get(
            "ignore_errors"
        ):
            msg = res.get("msg") if isinstance(res, Mapping) else None
            failures[host] = " ".join(str(msg or data.get("task") or "failed").split())[:600]
    if not seen:
        return None
    entries = [hosts[h] for h in sorted(hosts) if h not in failures]
    for host in sorted(failures):
        entries.append({"host": host, "lab": False, "stand_in": False, "error": failures[host]})
    doc: dict[str, Any] = {"format": BENCH_FORMAT, "run": run_id, "hosts": entries}
    doc["summary"] = summary(entries)
    return doc


def _host_entry(host: str, found: Mapping[str, Any]) -> dict[str, Any]:
    def flag(value: Any) -> bool:
        return value is True or str(value).lower() == "true"

    return {
        "host": host,
        "lab": flag(found.get("lab")),
        "stand_in": flag(found.get("stand_in")),
        "kernel": found.get("kernel"),
        "workload": found.get("workload"),
        "parameters": found.get("parameters") or {},
        "perf_effective": found.get("perf_effective"),
        "arms": {"A": dict(found["arms"]["A"]), "B": dict(found["arms"]["B"])},
        "decision": dict(found.get("decision") or {}),
    }


def ratios(entry: Mapping[str, Any]) -> dict[str, float | None]:
    """B/A per measurement (and per function pair: each arm's functions in name order,
    which pairs the letter's check with check and prepare with prepare) of one host."""
    arms = entry.get("arms") or {}
    a, b = arms.get("A") or {}, arms.get("B") or {}
    out: dict[str, float | None] = {}
    if b.get("not_measurable"):
        return out
    fa = sorted((a.get("functions") or {}).items())
    fb = sorted((b.get("functions") or {}).items())
    for index, ((_, sa), (_, sb)) in enumerate(zip(fa, fb, strict=False)):
        out[f"function{index}.avg_us"] = ratio(sa.get("avg_us"), sb.get("avg_us"))
    for key, *_ in MEASUREMENTS:
        out[key] = ratio(_get(a, key), _get(b, key))
    return out


def worse_in(entry: Mapping[str, Any]) -> list[str]:
    """The measurements in which B is worse than A by more than :data:`WORSE_MARGIN`."""
    found = []
    values = ratios(entry)
    for key, label, _, higher_is_worse in MEASUREMENTS:
        if key in ("reports_per_second", "nmi_delta"):
            continue  # B samples on purpose: more reports or NMIs are its means, not a loss
        value = values.get(key)
        if value is None:
            continue
        if (higher_is_worse and value > 1 + WORSE_MARGIN) or (
            not higher_is_worse and value < 1 - WORSE_MARGIN
        ):
            found.append(label)
    for key, value in values.items():
        if key.startswith("function") and value is not None and value > 1 + WORSE_MARGIN:
            found.append(f"access-check function {int(key[8:].split('.')[0]) + 1} latency")
    return found


def summary(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The fleet summary: median B/A per measurement, hosts where B is worse, decisions."""
    measured = [e for e in entries if not e.get("error")]
    keys: dict[str, list[float]] = {}
    for entry in measured:
        for key, value in ratios(entry).items():
            if value is not None:
                keys.setdefault(key, []).append(value)
    return {
        "median_ratio_b_over_a": {
            k: round(statistics.median(v), 4) for k, v in sorted(keys.items())
        },
        "b_worse": {str(e["host"]): worse_in(e) for e in measured if worse_in(e)},
        "decisions": {str(e["host"]): (e.get("decision") or {}).get("decision") for e in measured},
        "failed": [str(e["host"]) for e in entries if e.get("error")],
        "lab_hosts": [str(e["host"]) for e in entries if e.get("lab")],
    }


# --------------------------------------------------------------------------- rendering


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        text = f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    else:
        text = str(value)
    return f"{text} {unit}".rstrip() if unit else text


def _function_cell(stats: Mapping[str, Any] | None) -> str:
    if not stats:
        return "-"
    if stats.get("not_measurable"):
        return "not measurable"
    if not stats.get("count"):
        return "not called"
    return (
        f"avg {_fmt(stats.get('avg_us'))} us (min {_fmt(stats.get('min_us'))}, "
        f"max {_fmt(stats.get('max_us'))}, n={stats.get('count')})"
    )


def host_rows(entry: Mapping[str, Any]) -> list[list[str]]:
    """[measurement, A, B, B/A] rows of one host: the functions first (letter order)."""
    arms = entry.get("arms") or {}
    a, b = arms.get("A") or {}, arms.get("B") or {}
    values = ratios(entry)
    rows: list[list[str]] = []
    fa = sorted((a.get("functions") or {}).items())
    fb = sorted((b.get("functions") or {}).items())
    for index in range(max(len(fa), len(fb))):
        name_a, sa = fa[index] if index < len(fa) else ("-", None)
        name_b, sb = fb[index] if index < len(fb) else ("-", None)
        label = name_a if name_a == name_b else f"{name_a} | {name_b}"
        rows.append(
            [
                label,
                _function_cell(sa),
                "not measured" if b.get("not_measurable") else _function_cell(sb),
                _fmt(values.get(f"function{index}.avg_us")),
            ]
        )
    for key, label, unit, _ in MEASUREMENTS:
        rows.append(
            [
                f"{label}" + (f" ({unit})" if unit else ""),
                _fmt(_get(a, key)),
                "not measured" if b.get("not_measurable") else _fmt(_get(b, key)),
                _fmt(values.get(key)),
            ]
        )
    return rows


def _host_heading(entry: Mapping[str, Any]) -> str:
    labels = []
    if entry.get("lab"):
        labels.append("LAB FIGURES")
    if entry.get("stand_in"):
        labels.append(STAND_IN_NOTE)
    suffix = f" [{'; '.join(labels)}]" if labels else ""
    return f"{entry.get('host')}: kernel {entry.get('kernel') or '?'}{suffix}"


def _params_line(entry: Mapping[str, Any]) -> str:
    p = entry.get("parameters") or {}
    iv = p.get("intervals") or {}
    nr = p.get("nr_regions") or {}
    events = json.dumps(p.get("perf_events") or [], sort_keys=True)
    return (
        f"{p.get('operations')}, intervals {iv.get('sample_us')}/{iv.get('aggr_us')}/"
        f"{iv.get('update_us')}, nr_regions {nr.get('min')}..{nr.get('max')}, "
        f"{p.get('arm_seconds')} s per arm, workload {entry.get('workload')}, "
        f"B events {events}, B perf_effective {entry.get('perf_effective')}"
    )


def _decision_line(entry: Mapping[str, Any]) -> str:
    decision = entry.get("decision") or {}
    return f"decision: {decision.get('decision')} ({decision.get('reason')})"


def _not_measurable(entry: Mapping[str, Any]) -> list[str]:
    out = []
    for arm in ("A", "B"):
        data = (entry.get("arms") or {}).get(arm) or {}
        if data.get("not_measurable"):
            out.append(f"arm {arm} not measurable: {data['not_measurable']}")
        for name, stats in (data.get("functions") or {}).items():
            if isinstance(stats, Mapping) and stats.get("not_measurable"):
                out.append(f"arm {arm} {name}: not measurable: {stats['not_measurable']}")
        work = data.get("workload") or {}
        if work.get("not_reported"):
            out.append(f"arm {arm} workload: not reported: {work['not_reported']}")
    return out


def _align(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out


HEADER = ["measurement", "A accessed bits", "B perf events", "B/A"]


def _summary_lines(doc: Mapping[str, Any]) -> list[str]:
    s = doc.get("summary") or {}
    out = []
    medians = s.get("median_ratio_b_over_a") or {}
    if medians:
        out.append(
            "median B/A over the fleet: " + ", ".join(f"{k} {_fmt(v)}" for k, v in medians.items())
        )
    worse = s.get("b_worse") or {}
    out.append(
        "hosts where B is worse: "
        + ("; ".join(f"{h} ({', '.join(w)})" for h, w in worse.items()) if worse else "none")
    )
    decisions = s.get("decisions") or {}
    if decisions:
        out.append("decisions: " + ", ".join(f"{h} {d}" for h, d in decisions.items()))
    if s.get("failed"):
        out.append("bench failed on: " + ", ".join(s["failed"]))
    if s.get("lab_hosts"):
        out.append(LAB_NOTE)
    return out


def render_table(doc: Mapping[str, Any]) -> str:
    """The letter-style A/B table per host, for a terminal, then the fleet summary."""
    lines = [f"bench of run {doc.get('run') or '?'}"]
    for entry in doc.get("hosts") or []:
        lines.append("")
        if entry.get("error"):
            lines.append(f"{entry.get('host')}: bench failed: {entry['error']}")
            continue
        lines.append(_host_heading(entry))
        lines.append("  " + _params_line(entry))
        lines += ["  " + line for line in _align([HEADER, *host_rows(entry)])]
        lines.append("  " + _decision_line(entry))
        lines += ["  " + line for line in _not_measurable(entry)]
    lines.append("")
    lines += _summary_lines(doc)
    return "\n".join(lines) + "\n"


def letter_blocks(entry: Mapping[str, Any]) -> list[str]:
    """Each measured function's statistics, printed as the cover letter prints them."""
    out = []
    for arm in ("A", "B"):
        data = (entry.get("arms") or {}).get(arm) or {}
        for name, stats in (data.get("functions") or {}).items():
            if isinstance(stats, Mapping):
                out.append(f"arm {arm}\n{format_latency(name, stats)}")
    return out


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(doc: Mapping[str, Any]) -> str:
    lines = [f"# damon-fleet bench, run {doc.get('run') or '?'}", ""]
    for entry in doc.get("hosts") or []:
        if entry.get("error"):
            lines += [f"## {entry.get('host')}", "", f"bench failed: {_md(entry['error'])}", ""]
            continue
        lines += [f"## {_md(_host_heading(entry))}", "", _md(_params_line(entry)), ""]
        lines.append("| " + " | ".join(HEADER) + " |")
        lines.append("|---|---|---|---|")
        lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in host_rows(entry)]
        lines += ["", f"**{_md(_decision_line(entry))}**", ""]
        lines += [f"- {_md(x)}" for x in _not_measurable(entry)]
        blocks = letter_blocks(entry)
        if blocks:
            lines += ["", "```", *blocks, "```", ""]
    lines += ["## Fleet", ""] + [f"- {_md(x)}" for x in _summary_lines(doc)]
    return "\n".join(lines) + "\n"


def chart_svg(doc: Mapping[str, Any]) -> str:
    """One SVG: a panel per measurement, per host a bar for A and one for B."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = [e for e in doc.get("hosts") or [] if not e.get("error")]
    panels: list[tuple[str, list[float], list[float]]] = []
    for index in range(2):
        title = f"access-check function {index + 1}, avg (us)"
        a_vals, b_vals = [], []
        for entry in entries:
            arms = entry.get("arms") or {}
            fa = [v for _, v in sorted(((arms.get("A") or {}).get("functions") or {}).items())]
            fb = [v for _, v in sorted(((arms.get("B") or {}).get("functions") or {}).items())]
            a_vals.append(float(fa[index].get("avg_us") or 0) if index < len(fa) else 0.0)
            b_vals.append(float(fb[index].get("avg_us") or 0) if index < len(fb) else 0.0)
        panels.append((title, a_vals, b_vals))
    for key, label, unit, _ in MEASUREMENTS:
        a_vals = [float(_get((e.get("arms") or {}).get("A"), key) or 0) for e in entries]
        b_vals = [float(_get((e.get("arms") or {}).get("B"), key) or 0) for e in entries]
        panels.append((f"{label} ({unit})" if unit else label, a_vals, b_vals))
    names = [str(e.get("host")) + (" (lab)" if e.get("lab") else "") for e in entries]
    cols = 2
    rows = (len(panels) + cols - 1) // cols
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, searchable
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.6 * rows), squeeze=False)
    width = 0.38
    for ax, (title, a_vals, b_vals) in zip(axes.flat, panels, strict=False):
        xs = list(range(len(names)))
        ax.bar([x - width / 2 for x in xs], a_vals, width, label="A accessed bits")
        ax.bar([x + width / 2 for x in xs], b_vals, width, label="B perf events")
        ax.set_title(title, fontsize=9)
        ax.set_xticks(xs)
        ax.set_xticklabels(names, fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    out = io.StringIO()
    fig.savefig(out, format="svg")
    plt.close(fig)
    text = out.getvalue()
    return text[text.index("<svg") :]


def render_html(doc: Mapping[str, Any]) -> str:
    esc = html.escape
    parts = [
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">',
        f"<title>damon-fleet bench {esc(str(doc.get('run') or ''))}</title><style>"
        "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:.3em .6em;text-align:left}th{background:#eee}"
        ".lab{color:#8a4b00;font-weight:bold}</style></head><body>",
        f"<h1>damon-fleet bench, run {esc(str(doc.get('run') or '?'))}</h1>",
    ]
    parts.append(html_section(doc))
    parts.append("</body></html>\n")
    return "".join(parts)


def html_section(doc: Mapping[str, Any]) -> str:
    """The bench as an HTML fragment: per host the A/B table, the chart, the summary."""
    esc = html.escape
    parts = []
    for entry in doc.get("hosts") or []:
        if entry.get("error"):
            parts.append(f"<h2>{esc(str(entry.get('host')))}</h2>")
            parts.append(f"<p>bench failed: {esc(entry['error'])}</p>")
            continue
        parts.append(f"<h2>{esc(_host_heading(entry))}</h2><p>{esc(_params_line(entry))}</p>")
        if entry.get("lab"):
            parts.append(f'<p class="lab">{esc(LAB_NOTE)}</p>')
        head = "".join(f"<th>{esc(h)}</th>" for h in HEADER)
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
            for row in host_rows(entry)
        )
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        parts.append(f"<p><b>{esc(_decision_line(entry))}</b></p>")
        extra = _not_measurable(entry)
        if extra:
            parts.append("<ul>" + "".join(f"<li>{esc(x)}</li>" for x in extra) + "</ul>")
        blocks = letter_blocks(entry)
        if blocks:
            parts.append("<pre>" + esc("\n".join(blocks)) + "</pre>")
    if any(not e.get("error") for e in doc.get("hosts") or []):
        try:
            parts.append("<h2>A against B</h2>" + chart_svg(doc))
        except ImportError as exc:
            parts.append(f"<p>chart not drawn: {esc(str(exc))} (pip install matplotlib)</p>")
    parts.append("<h2>Fleet</h2><ul>")
    parts += [f"<li>{esc(x)}</li>" for x in _summary_lines(doc)]
    parts.append("</ul>")
    return "".join(parts)


def problem(doc: Any) -> str | None:
    """What keeps *doc* from being a usable ``bench.json`` (None when it is one)."""
    found: str | None = bench_problem(doc)
    return found


# --------------------------------------------------------------------------- report hooks


def report_entry(run_id: Any, events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``{"bench": bench.json}`` for a run report when hosts ran the bench, else ``{}``."""
    doc = from_events(str(run_id) if run_id is not None else None, events)
    return {"bench": doc} if doc is not None else {}


def report_lines(doc: Mapping[str, Any] | None) -> list[str]:
    """The bench section of ``damon-fleet report`` (a terminal table), or nothing."""
    return ["", *render_table(doc).rstrip("\n").splitlines()] if doc else []


def report_markdown(doc: Mapping[str, Any] | None) -> list[str]:
    if not doc:
        return []
    text = render_markdown(doc).replace("\n# damon-fleet bench", "\n## damon-fleet bench")
    return ["", *("#" + line if line.startswith("#") else line for line in text.splitlines())]


def report_html(doc: Mapping[str, Any] | None) -> str:
    return f"<h2>Bench</h2>{html_section(doc)}" if doc else ""
