"""``python -m litserve``: the same as the ``litserve`` command."""

import sys

from litserve.cli import main

if __name__ == "__main__":
    sys.exit(main())
