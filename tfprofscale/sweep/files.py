"""The names of the files and folders a sweep writes into its output directory (no imports: cheap to read)."""

#: Files at the top of a sweep directory (``fit`` and ``audit`` read them).
SWEEP_FILES = ("sweep.json", "results.csv", "layers.csv", "report.md")

#: Folders a sweep writes into: one record per configuration, traces, plots, trained weights.
SWEEP_FOLDERS = ("reports", "runs", "plots", "weights")
