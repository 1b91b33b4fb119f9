"""``python -m ocpp_trio``: the ``ocpp-trio`` command."""

import sys

from .cli import main

sys.exit(main())
