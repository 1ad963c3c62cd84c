"""The experiments and measurements behind every number in the README, one module each.

Run from the repository root as ``python -m benchmarks.<name> [options]`` (``--help`` lists a
module's options; the recipe comparisons print their README tables from the saved results with
``--table``). Each writes its raw results as JSON under ``benchmarks/results/``, naming the
machine (:mod:`benchmarks.report`).

Shared here: :mod:`benchmarks.report` (where results go, the machine record),
:mod:`benchmarks.arms` (training the seeds of a recipe with ``train.py``) and
:mod:`benchmarks.activations` (real feature tensors for the codec measurements). The statistics
that decide a comparison — paired BD-rates against the seed-to-seed noise floor — are
:mod:`cilight.evaluation.comparison`; every README table is rendered by
:func:`cilight.evaluation.tables.markdown_table`.
"""
