"""Typed records passed between the pipeline stages, at the bottom of the package: they import no stage.

Each stage (loading, tracing, graph stats, formulas, runtime, memory, report)
takes and returns these plain dataclasses, so a stage can be tested and
replaced alone. Counting conventions: ``flops`` counts a multiply-add as 2
operations (TensorFlow's profiler does the same), ``macs`` counts it as 1.
``None`` always means "not known / no formula", never zero.
"""
from tfprofscale.records.layers import LayerCost, LayerInfo, Shape
from tfprofscale.records.memory import LiveStep, LiveTensor, MemoryRecord
from tfprofscale.records.report import KernelTime, LayerRow, OpRow, Report, StepTimes, Totals
from tfprofscale.records.training import (AccumulationPlan, BackwardCost, Ledger, LedgerLine, MaxBatch,
                                          MeasuredTrainPeak, OptimizerSpec, TrainPeak)

__all__ = ["AccumulationPlan", "BackwardCost", "KernelTime", "LayerCost", "LayerInfo", "LayerRow", "Ledger",
           "LedgerLine", "LiveStep", "LiveTensor", "MaxBatch", "MeasuredTrainPeak", "MemoryRecord", "OpRow",
           "OptimizerSpec", "Report", "Shape", "StepTimes", "Totals", "TrainPeak"]
