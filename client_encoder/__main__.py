import sys

from privface_core.exitcodes import INTERRUPTED

try:
    from client_encoder.cli import main
except KeyboardInterrupt:  # Ctrl-C while Python loads the encoder: no traceback
    print("\ninterrupted", file=sys.stderr)
    sys.exit(INTERRUPTED)

sys.exit(main())
