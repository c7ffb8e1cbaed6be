import sys

from fhe_head.cli import main

sys.exit(main())
