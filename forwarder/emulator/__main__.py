"""``python -m forwarder.emulator``: the same options as ``forwarder emulator``."""

import sys

from forwarder.emulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
