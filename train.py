"""Train a split multi-task CI model: ``python train.py [--config FILE] [--trainer.* …] [--model.* …] [--data.* …]``.

Fits on the embedded SyntheticStreets data by default, then tests the best checkpoint and
prints the test metrics. ``python train.py --help`` lists every option.
"""

import sys

from cilight.cli import main

if __name__ == "__main__":
    sys.exit(main())
