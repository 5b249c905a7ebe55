"""Scaling studies: configuration grids, executors, the result store, tables, plots and HParams."""
