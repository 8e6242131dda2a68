"""``python -m robbench`` (and ``torchrun ... -m robbench``): the command line."""

import sys

from robbench.cli import main

sys.exit(main())
