import sys

from pogo_jax.cli import main

sys.exit(main())
