"""``python -m simreal.cli``: the same as the ``simreal`` command."""

import sys

from simreal.cli import main

sys.exit(main())
