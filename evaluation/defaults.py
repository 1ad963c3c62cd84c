"""What every measurement uses unless told otherwise, in a module that imports nothing.

The command lines show these in ``--help`` and check their arguments before they import numpy,
torch or the codecs, so a mistake is answered at once; the measuring modules import them from here.
"""

# curves (Alvar & Bajić, ICIP 2019, §3, Table 1): PNG, then JPEG at quality 95, 90, 85, 80
PAPER_FAMILY = "paper=png+jpeg:quality=95,90,85,80"
DEFAULT_FAMILIES = (PAPER_FAMILY,)

# BD-rate (Bjøntegaard, VCEG-M33)
BD_METHODS = ("cubic", "pchip", "akima")
DOMINATED = ("refuse", "drop")  # what bd_rate does with a curve whose metric does not rise strictly
MIN_OVERLAP = 0.5  # least share of the union of the two ranges that both curves cover

# paired comparisons of arms (cilight.evaluation.paired), fixed before any result is seen
BAND_FRACTIONS = (0.5, 0.95)  # the metric band: shares of the anchor's uncompressed metric (from its floor)
LEVELS = (0.8, 0.9, 0.95)  # accuracy levels of the rate at equal accuracy, the same shares
ALPHA = 0.05  # family-wise level of the verdicts (Holm across the tasks of one comparison)
CONFIDENCE = 0.95  # of the paired t-intervals
PRECISION = 5.0  # percent of rate: the largest saving a verdict "no saving larger than" may leave open

# the allocation experiment (Alvar & Bajić, IEEE TIP 2021, §VI-A)
TUPLES = 100  # rate tuples of the §VI-A sweep, as in the paper
REFINE_TUPLES = 10  # tuples per budget of the local sweep (0: the paper's single sweep)

__all__ = ["ALPHA", "BAND_FRACTIONS", "BD_METHODS", "CONFIDENCE", "LEVELS", "DEFAULT_FAMILIES", "DOMINATED",
           "MIN_OVERLAP", "PAPER_FAMILY", "PRECISION", "REFINE_TUPLES", "TUPLES"]
