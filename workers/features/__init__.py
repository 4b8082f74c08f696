"""Feature front ends: log-mel for audio (plain torch, librosa only for the filterbank)."""
from .functional import (LOG_EPS, frame_signal, librosa_mel_filterbank, log_mel_frames,
                         power_spectrum, stack_frames)
from .logmel import LogMel, LogMelSpec

__all__ = ["LOG_EPS", "LogMel", "LogMelSpec", "frame_signal", "librosa_mel_filterbank",
           "log_mel_frames", "power_spectrum", "stack_frames"]
