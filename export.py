"""Export a checkpoint as edge and cloud ONNX halves: ``python export.py --ckpt CKPT --out DIR [--demo IMAGE]``.

Checks both files against PyTorch with ONNX Runtime before leaving them; ``--help`` lists options.
"""

import sys

from cilight.export_cli import main

if __name__ == "__main__":
    sys.exit(main())
