import sys

from lopt_core.cli import main

sys.exit(main())
