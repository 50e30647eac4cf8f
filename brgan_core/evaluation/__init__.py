"""Evaluation metrics as the paper reports them, plus calibration (pure numpy/scipy).

* :mod:`.auc` — image-wise ROC AUC, stratified bootstrap CI, DeLong test (Table 1, 3).
* :mod:`.localization` — CAM top-1 localization error at IoU 0.1 (Table 2).
* :mod:`.fid` — Fréchet distance between feature sets (Sect. 3.2).
* :mod:`.calibration` — temperature scaling, ECE, reliability diagram, operating threshold.
* :mod:`.report` — ROC plot and the markdown report.

No model code here: every function takes arrays (labels, scores, logits, CAMs, features).
"""
