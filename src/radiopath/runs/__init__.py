"""Run folders: their layout (:mod:`.layout`) and the public API to open and use one.

``load_run(RUN)`` gives a :class:`Run`: typed config, cohort, predictions, thresholds,
fitted preprocessing, fold models, and :meth:`Run.predict` for new patients.
"""

from radiopath.runs.run import PREDICT_COLUMNS, InputsInfo, Run, load_run

__all__ = ["PREDICT_COLUMNS", "InputsInfo", "Run", "load_run"]
