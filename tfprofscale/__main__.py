"""``python -m tfprofscale``: the command line entry point."""
from tfprofscale.cli import console_main

console_main()
