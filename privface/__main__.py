import sys

from privface.cli import main

sys.exit(main())
