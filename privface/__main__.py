import sys

from privface_core.exitcodes import INTERRUPTED

try:
    from privface.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python loads the command: no traceback
    print("\ninterrupted", file=sys.stderr)
    sys.exit(INTERRUPTED)

sys.exit(main())
