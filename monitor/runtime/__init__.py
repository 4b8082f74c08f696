"""The per-stream runtime every source feeds: grid, gaps, input health, windowing, batching,
alerting, event audio, hot reload; and the drivers that run sources through it."""
