"""Ready-made LitAPIs for smoke tests and demos, with the names and answers of LitServe's ``test_examples``."""

from litserve.test_examples.openai_spec_example import (
    OpenAIBatchContext,
    TestAPI,
    TestAPIWithCustomEncode,
    TestAPIWithStructuredOutput,
    TestAPIWithToolCalls,
)
from litserve.test_examples.simple_example import SimpleBatchedAPI, SimpleLitAPI, SimpleStreamAPI, SimpleTorchAPI

__all__ = [
    "OpenAIBatchContext",
    "SimpleBatchedAPI",
    "SimpleLitAPI",
    "SimpleStreamAPI",
    "SimpleTorchAPI",
    "TestAPI",
    "TestAPIWithCustomEncode",
    "TestAPIWithStructuredOutput",
    "TestAPIWithToolCalls",
]
