"""Measuring split models (``cilight.evaluation``): what a model achieves at which rate.

* rate sweeps and the §VI-A allocation experiment (Alvar & Bajić, "Pareto-optimal bit allocation
  for collaborative intelligence", IEEE TIP 2021) — :mod:`~cilight.evaluation.sweep`,
  :mod:`~cilight.evaluation.experiment`; the allocation math itself is :mod:`cilight.allocation`;
* BD-rate and BD-metric (Bjøntegaard, VCEG-M33) — :mod:`~cilight.evaluation.bdrate`;
  rate–accuracy curves measured with real bytes and the BD-rate table between models
  (Alvar & Bajić, ICIP 2019, §3) — :mod:`~cilight.evaluation.curves`;
* Back-and-Forth prediction measured against image codecs (Choi et al., ICASSP 2020, §4) —
  :mod:`~cilight.evaluation.baf`;
* two training recipes compared over pairs of models (same seed, or one base): BD-rate as a log rate
  ratio over a metric band fixed in advance, paired t-intervals, Holm across tasks and a verdict in
  words — :mod:`~cilight.evaluation.paired`; the same paired interval over the BD-rates of arms trained
  from scratch with the same seeds — :mod:`~cilight.evaluation.comparison`;
* tables, plots, CSV/JSON and W&B logging of the results — :mod:`~cilight.evaluation.report`; the
  markdown table renderer of the README tables — :mod:`~cilight.evaluation.tables`;
* the training callbacks (the per-epoch rate–distortion experiment, the sample grid) —
  :mod:`~cilight.evaluation.callbacks`;
* a checkpoint's curves, measured once and cached beside it — :mod:`~cilight.evaluation.checkpoint_curves`;
* the remote-inference anchor (the input image coded, the whole model on the decoded image), a curve
  family of ``image:`` points — :mod:`~cilight.evaluation.remote`.
"""

import importlib

# name → the submodule that defines it. The package imports a submodule when one of its names is first
# used, so a command line importing only :mod:`~cilight.evaluation.defaults` for its --help and its
# argument checks does not load torch, the codecs and matplotlib first.
_EXPORTS = {
    "bdrate": ("MIN_OVERLAP", "bd_metric", "bd_rate", "metric_overlap"),
    "callbacks": ("PredictionGrid", "RateDistortionCallback"),
    "comparison": ("ArmComparison", "Spread", "compare_arms", "holm_by_family", "paired_bd_rates"),
    "curves": ("BdRateRow", "CurvePoint", "Family", "RateAccuracyCurves", "bd_rate_rows", "family_bd_rate_rows",
               "measure_curves", "parse_families"),
    "experiment": ("METHODS", "REFINE_TUPLES", "TUPLES", "UNREFINED", "AllocationRow", "run_allocation",
                   "scan_budget_line", "task_distortions"),
    "paired": ("CurveMeeting", "LevelComparison", "PairedComparison", "PairedInterval", "PostHocReading", "RateAtLevel",
               "bd_log_rate", "compare_pairs", "compare_tasks", "covered_band", "holm", "log_rate_at_levels",
               "meet_curves", "metric_band", "paired_interval", "percent", "read_refused", "verdict"),
    "remote": ("IMAGE_PREFIX", "ImagePoint", "camera_pixels", "code_pictures", "image_codecs"),
    "sweep": ("RateSweep", "distortion_metrics", "local_rate_tuples", "rate_sweep", "sample_rate_tuples"),
    "tables": ("markdown_table",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODULE_OF])


__all__ = [
    "IMAGE_PREFIX",
    "METHODS",
    "MIN_OVERLAP",
    "REFINE_TUPLES",
    "TUPLES",
    "UNREFINED",
    "AllocationRow",
    "ArmComparison",
    "BdRateRow",
    "CurveMeeting",
    "CurvePoint",
    "Family",
    "ImagePoint",
    "LevelComparison",
    "PairedComparison",
    "PairedInterval",
    "PostHocReading",
    "PredictionGrid",
    "RateAccuracyCurves",
    "RateAtLevel",
    "RateDistortionCallback",
    "RateSweep",
    "Spread",
    "bd_log_rate",
    "bd_metric",
    "bd_rate",
    "bd_rate_rows",
    "camera_pixels",
    "code_pictures",
    "compare_arms",
    "compare_pairs",
    "compare_tasks",
    "covered_band",
    "distortion_metrics",
    "family_bd_rate_rows",
    "holm",
    "holm_by_family",
    "image_codecs",
    "local_rate_tuples",
    "log_rate_at_levels",
    "markdown_table",
    "measure_curves",
    "meet_curves",
    "metric_band",
    "metric_overlap",
    "paired_bd_rates",
    "paired_interval",
    "parse_families",
    "percent",
    "rate_sweep",
    "read_refused",
    "run_allocation",
    "sample_rate_tuples",
    "scan_budget_line",
    "task_distortions",
    "verdict",
]
