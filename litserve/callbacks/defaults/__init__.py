"""Ready-made callbacks."""

from litserve.callbacks.defaults.metric_callback import PredictionTimeLogger, RequestTracker

__all__ = ["PredictionTimeLogger", "RequestTracker"]
