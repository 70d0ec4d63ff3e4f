"""Analysis: paired bootstrap comparisons, compare summaries, robustness to how an ECG was
recorded, and plots."""
