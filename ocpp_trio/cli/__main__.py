"""``python -m ocpp_trio.cli``."""

import sys

from . import main

sys.exit(main())
