"""``python -m tfprofscale``: the command line entry point."""
import sys

from tfprofscale.cli import main

sys.exit(main())
