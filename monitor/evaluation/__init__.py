"""Evaluation: DCASE clip AUC, the SKAB and NAB protocols, the anchors' decision rules, plots."""
