"""Evaluate a checkpoint: ``python evaluate.py allocate --ckpt CKPT --budgets 8 12 16`` (kbit per image).

Runs the bit-allocation experiment of the Pareto paper (§VI-A); ``--help`` lists the options.
"""

import sys

from cilight.evaluate_cli import main

if __name__ == "__main__":
    sys.exit(main())
