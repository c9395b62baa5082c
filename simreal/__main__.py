"""``python -m simreal ...``: the `simreal` command (for scripts that must run the interpreter they run in)."""

import sys

from simreal.cli import main

sys.exit(main())
