"""`python -m lagrangian_eqprop ...` is the `lagrangian-eqprop` command."""

import sys

from .cli import main

sys.exit(main())
