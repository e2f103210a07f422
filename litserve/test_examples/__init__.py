"""Ready-made LitAPIs for smoke tests and demos."""

from litserve.test_examples.simple_example import SimpleBatchedAPI, SimpleLitAPI, SimpleStreamAPI, SimpleTorchAPI

__all__ = ["SimpleBatchedAPI", "SimpleLitAPI", "SimpleStreamAPI", "SimpleTorchAPI"]
