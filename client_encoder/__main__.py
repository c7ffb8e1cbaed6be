import sys

from client_encoder.cli import main

sys.exit(main())
