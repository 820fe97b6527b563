"""``python -m netlab.bench.loadgen SPEC``: one run of the load generator (see the package)."""

import sys

from . import main

sys.exit(main(sys.argv))
