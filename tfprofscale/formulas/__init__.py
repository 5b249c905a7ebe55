"""The hand formulas: per-layer FLOPs, MACs, parameters and activations, one registered function each."""
