"""The data plane: windowing, features, micro-batching, device placement, the scoring loop.

Imports ``models``; never imports ``monitor``.
"""
