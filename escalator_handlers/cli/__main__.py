"""``python -m escalator_handlers.cli``: what the handler runs to start a collector."""

import sys

from . import main

sys.exit(main())
