"""Where estimates diverge: counting conventions, memory model, roofline, time fits and the latency model."""
