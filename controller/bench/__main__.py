"""``python -m controller.bench``: the real-time loop benchmark (``controller.bench.loop``)."""

import sys

from controller.bench.loop import main

if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
