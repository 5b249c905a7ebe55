"""Memory of one step: allocation records, the estimate, workspace probes."""
