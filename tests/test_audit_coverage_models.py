"""Every hand-built model of tools/coverage_models.py profiles, and its report audits without an error.

Recurrent models (LSTM, GRU, Bidirectional, ConvLSTM) once crashed the audit's roofline; each report is
written to JSON and audited from the file, as ``tfprofscale audit REPORT.json`` does.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import tfprofscale
from tfprofscale.audit.analysis import audit_path
from tfprofscale.audit.render import render_markdown, render_text

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def _coverage_models():
    spec = importlib.util.spec_from_file_location("coverage_models", TOOLS / "coverage_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.HAND_BUILT


HAND_BUILT = _coverage_models()


@pytest.mark.parametrize("name", sorted(HAND_BUILT))
def test_the_report_of_every_coverage_model_audits(name, tmp_path):
    report = tfprofscale.profile(HAND_BUILT[name](), batch_size=1, steps=1, warmup=1, trace_steps=2,
                                 logdir=str(tmp_path / "runs"), tf_cost_model=False, max_time=0.1)
    path = tmp_path / f"{name}.json"
    report.write_json(path)
    audit = audit_path(path)
    assert len(audit.profiles) == 1 and audit.profiles[0].model == report.model
    assert render_text(audit) and render_markdown(audit)
    timed = [op for op in report.ops if op.time_us is not None and op.fused_into is None]
    assert timed and all(op.time_us >= 0 for op in timed)
