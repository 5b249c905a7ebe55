"""Profiling one model: load, trace, graph statistics, runtime, attribution, report, table."""
