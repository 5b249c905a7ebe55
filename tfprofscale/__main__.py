"""``python -m tfprofscale``: the command line entry point."""
import signal
import sys

from tfprofscale.cli import main

status = main()
if status in (130, 143):  # interrupted, clean-up done and said: a second Ctrl-C must not break the exit
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
sys.exit(status)
