"""Evaluation sets as data: their records read and checked by task shape (`records.py`), and how
much of each a run's training data holds (`contamination.py`, `eval.contamination/v2`).

Below `runs/` (which measures the overlap before the gate) and `evals/` (which scores weights
and measures it again at release), so both share one reading of the records and one measurement.
"""
