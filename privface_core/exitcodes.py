"""Exit statuses shared by both command lines (`python -m privface`, `python -m client_encoder`).

    0  OK            same person / a match found / the command did what was asked
    1  FAILED        no answer: a photo that cannot be used (unreadable, no face), the server
                     unreachable or refusing, keys or artifacts that do not fit
    2  USAGE         the command line itself is wrong (argparse's own status), or a question
                     that needs `--yes` with no terminal to ask
    3  NEGATIVE      an answer, and it is no: different people / no enrolled template matches
  130  INTERRUPTED   Ctrl-C (SIGINT): "interrupted" on stderr, the status shells give (128 + 2)

A script can tell "no" (3) from "could not tell" (1) from "called wrongly" (2).
"""

from __future__ import annotations

OK = 0
FAILED = 1
USAGE = 2
NEGATIVE = 3
INTERRUPTED = 130

HELP = (
    "exit status: 0 same person / match / done; 1 failed (bad photo, no face, server or key error); "
    "2 usage error; 3 different people / no match; 130 interrupted"
)
