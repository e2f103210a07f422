"""Callbacks: user code run at fixed points of the server's life and of every request (see ``base``)."""

from litserve.callbacks.base import Callback, CallbackRunner, EventTypes, NoopCallback, callback_runner

__all__ = ["Callback", "CallbackRunner", "EventTypes", "NoopCallback", "callback_runner"]
