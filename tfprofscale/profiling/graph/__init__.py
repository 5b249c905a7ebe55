"""Counting the traced graph: tfprof FLOPs, function bodies and loops, Grappler's cost model."""
