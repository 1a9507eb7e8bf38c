"""spark-submit's application file for vendlab jobs: ``spark-submit ... /opt/vendlab/submit.py job kappa ...``.

It only calls the CLI; it lives in its own folder so no vendlab module shadows a library on sys.path.
"""

import sys

from vendlab.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
