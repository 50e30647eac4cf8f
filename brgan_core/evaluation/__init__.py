"""Evaluation metrics as the paper reports them, plus calibration (pure numpy/scipy).

* :mod:`.auc` — image-wise ROC AUC, stratified bootstrap CI, DeLong test (Table 1, 3).
* :mod:`.localization` — CAM top-1 localization error at IoU 0.1 (Table 2).
* :mod:`.fid` — Fréchet distance between feature sets (Sect. 3.2).
* :mod:`.calibration` — temperature scaling, ECE, reliability diagram, operating threshold.
* :mod:`.report` — ROC plot and the markdown report.

The metric modules above take arrays (labels, scores, logits, CAMs, features); these produce
them from checkpoints and data (``brgan evaluate``, ``docs/evaluation.md``):

* :mod:`.predictions` — :func:`~.predictions.predict_pairs`: a model over a dataset of pairs.
* :mod:`.runner` — calibration on validation, metrics on test, the calibrated checkpoint.
* :mod:`.data` — the patient-wise split of training, re-made by seed; fingerprint check.
* :mod:`.outputs` — report.md, metrics.json, predictions.csv, ROC and reliability PNGs.
"""
