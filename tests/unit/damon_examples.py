"""The published example of the RFC v3 cover letter, as a damon_perf_kdamonds entry.

One vaddr kdamond on a pid, intervals 5s/60s/300s, nr_regions min = max = 1e9 (page
granularity), one perf event: sample_freq 5000, sample_phys_addr 0, type 0x4,
config 0x1cd, config1 0x1f, config2 0.
"""

from __future__ import annotations

from typing import Any

EXAMPLE: dict[str, Any] = {
    "operations": "vaddr",
    "targets": [{"pid": 1234}],
    "intervals": {"sample_us": "5s", "aggr_us": "60s", "update_us": "300s"},
    "nr_regions": {"min": 1000000000, "max": 1000000000},
    "perf_events": [
        {
            "sample_freq": 5000,
            "sample_phys_addr": 0,
            "type": "0x4",
            "config": "0x1cd",
            "config1": "0x1f",
            "config2": 0,
        }
    ],
}
