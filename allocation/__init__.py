"""Rate–distortion analysis and bit allocation among transmitted streams (``cilight.allocation``)."""
