"""Timing steps, reading the profiler trace and attributing kernels to layers."""
