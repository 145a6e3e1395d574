"""`python -m lopt_core.bench [...]`: see core.py."""
from lopt_core.bench.core import main

raise SystemExit(main())
