"""`python -m keras_catembed` runs the `catembed` command."""

import sys

from keras_catembed.cli import main

if __name__ == "__main__":
    sys.exit(main())
