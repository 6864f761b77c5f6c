"""``python -m lamson.cli`` is ``lamson`` (used when only the interpreter's path is known)."""

import sys

from lamson.cli import main

sys.exit(main())
