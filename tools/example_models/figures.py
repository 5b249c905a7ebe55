"""Per report JSON: kernel coverage of the traced step, layers with counted work and no time (and whether a time
note explains them), the largest share and the leaves' sum, and the memory estimate against the measured total.

    python tools/example_models/figures.py REPORT.json [...]

The reports come from ``tfprofscale profile tools/example_models/NAME.py --batch-size 8 --threads 1 --json ...``.
"""
from __future__ import annotations

import json
import sys


def figures(report: dict) -> str:
    parents = {row["parent"] for row in report["layers"] if row.get("parent")}
    leaves = [row for row in report["layers"] if row["name"] not in parents]
    silent = [row["name"] for row in leaves
              if (row.get("graph_flops") or 0) > 0 and not row.get("time_us") and not row.get("time_notes")]
    noted = [row["name"] for row in leaves
             if (row.get("graph_flops") or 0) > 0 and not row.get("time_us") and row.get("time_notes")]
    shares = [row["time_share"] for row in report["layers"] if row.get("time_share") is not None]
    totals, memory = report["totals"], report.get("memory") or {}
    mib = 2 ** 20
    return (f"{report['model']}: kernels cover {100 * (totals.get('kernel_coverage') or 0):.1f}% of the "
            f"{totals['traced_step_time_ms']['median']:.2f} ms traced step; work and no time: {len(silent)} silent "
            f"{silent}, {len(noted)} with a note; largest share {100 * max(shares, default=0):.1f}%, leaves sum "
            f"{100 * sum(row.get('time_share') or 0 for row in leaves):.1f}%; memory measured total "
            f"{(totals.get('peak_bytes') or 0) / mib:.3f} MiB, estimate {(memory.get('estimated_peak_bytes') or 0) / mib:.3f} MiB")


if __name__ == "__main__":
    for path in sys.argv[1:]:
        with open(path) as handle:
            print(figures(json.load(handle)))
