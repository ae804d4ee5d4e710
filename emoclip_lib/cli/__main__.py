"""`python -m emoclip_lib.cli ...` (used under torchrun)."""
import sys

from .main import main

sys.exit(main())
