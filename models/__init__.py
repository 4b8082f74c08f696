"""Scorers and their maths: one folder per scorer, the threshold, model artifacts.

Imports nothing from ``workers`` or ``monitor``.
"""
