"""The experiments and measurements behind every number in the README, one module each.

Run from the repository root as ``python -m benchmarks.<name> [options]`` (``--help`` lists a
module's options; the recipe comparisons print their README tables from the saved results with
``--table``). Each writes its raw results as JSON under ``benchmarks/results/``, naming the
machine (:mod:`benchmarks.report`).

Shared here: :mod:`benchmarks.report` (where results go, the machine record),
:mod:`benchmarks.arms` (training the seeds of a recipe with ``train.py``) and
:mod:`benchmarks.activations` (real feature tensors for the codec measurements). The statistics
that decide a recipe comparison are paired: :mod:`cilight.evaluation.paired` (BD-rate as a mean log
rate ratio per pair, a paired t-interval over pairs, Holm across tasks, a verdict), used by
:mod:`benchmarks.shared_base` (the shared-base protocol; reports in ``docs/experiments/``). The older
from-scratch scripts (``compressibility_bdrate``, ``rate_aware_training``, ``learned_codec``) first decided
by a seed-to-seed noise floor, a rule retired after their results were seen; their tables now show the
paired 95% t-interval over the seeds with Holm across tasks (:mod:`cilight.evaluation.comparison`), read
from their JSON, which is kept for history. Every README table is rendered by
:func:`cilight.evaluation.tables.markdown_table`.
"""
