"""``python -m worker.cli``: the same as the ``secops`` console script."""

import sys

from worker.cli.app import main

if __name__ == "__main__":
    sys.exit(main())
