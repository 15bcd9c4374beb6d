"""``python -m avxai``: the same command line as the ``avxai`` script (``python -m avxai demo --out DIR``)."""

import sys

from avxai.cli import main

if __name__ == "__main__":
    sys.exit(main())
