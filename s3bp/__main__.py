"""``python -m s3bp``: the command line."""

import sys

from .cli import main

sys.exit(main())
