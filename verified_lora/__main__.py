"""``python -m verified_lora``: the ``verified-lora`` command line."""

import sys

from .cli import main

sys.exit(main())
