"""Figures of the training-step profile: train/forward FLOPs, the ledger against the measured peak, max batch.

For each model file given, one `profile --train` (API) at --batch-size, printed as: graph FLOPs forward and
whole step, train_to_forward, the formulas' train FLOPs, the measured peak and the ledger's estimate (each
term), the median step time, and (with --memory-budget) the largest batch found and its measured peaks.
Run one model at a time on a shared machine (ResNet50's max-batch search holds ~4 GiB).

    python tools/train_figures.py MODEL.py [MODEL.py ...] [--batch-size 2] [--memory-budget 4GiB]
"""
from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--memory-budget")
    parser.add_argument("--optimizer")
    args = parser.parse_args()
    from tfprofscale.profiling.pipeline import ProfileOptions, run_profile

    for model in args.models:
        load = os.getloadavg()[0]
        options = ProfileOptions(batch_size=args.batch_size, steps=5, warmup=2, trace_steps=3, logdir="/tmp/train_figures",
                                 tf_cost_model=False, max_time=2.0, train=True, optimizer=args.optimizer,
                                 memory_budget=args.memory_budget)
        report = run_profile(model, options)
        t, m = report.totals, report.memory
        print(f"== {model} batch {args.batch_size}: {report.train_setup}; load {load:.2f} -> {os.getloadavg()[0]:.2f}")
        print(f"graph FLOPs forward {t.graph_flops:,} step {t.graph_train_flops:,} by phase {t.graph_flops_by_phase}")
        print(f"train_to_forward {t.train_to_forward:.3f}; formulas train {t.train_flops} update {t.update_flops}")
        print(f"step time median {t.step_time_ms.median:.1f} ms; phase time us {t.time_us_by_phase}")
        ledger = m.ledger or {}
        print(f"measured peak {t.peak_bytes:,} B; ledger estimate {ledger.get('total_estimated_bytes'):,} B "
              f"(estimate/measured {ledger.get('total_estimated_bytes') / t.peak_bytes:.3f})")
        for line in ledger.get("lines", []):
            print(f"   {line['term']:<18} est {line['estimated_bytes']:>14,}  measured {line['measured_bytes']}")
        if report.max_batch is not None:
            print(f"max batch {report.max_batch}")
        print(f"warnings: {report.warnings}", flush=True)


if __name__ == "__main__":
    main()
