"""`python -m tinygrad_l2` runs the tinygrad-l2 command."""
import sys

from .lessons.cli import main

sys.exit(main())
