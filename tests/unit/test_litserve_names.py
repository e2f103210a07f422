"""Every public name of LitServe 0.2.19 that a user's code reaches imports here, and the small ones behave."""

from __future__ import annotations

import pytest

import litserve as ls
from litserve.connector import _Connector, check_cuda_with_nvidia_smi
from litserve.loops import (
    BatchedLoop,
    BatchedStreamingLoop,
    ContinuousBatchingLoop,
    LitLoop,
    SingleLoop,
    StreamingLoop,
    get_default_loop,
)
from litserve.middlewares import MaxSizeMiddleware
from tests.unit.test_package_imports import run_python

# ``litserve.__all__`` of LitServe 0.2.19, and what else ``dir(litserve)`` lists there.
LITSERVE_ALL = [
    "Callback",
    "LitAPI",
    "LitServer",
    "Logger",
    "OpenAISpec",
    "OpenAIEmbeddingSpec",
    "Request",
    "Response",
    "set_trace",
    "set_trace_if_debug",
    "test_examples",
]
LITSERVE_DIR = [
    "configure_logging",
    "middlewares",
    "connector",
    "python_client",
    "constants",
    "loops",
    "specs",
    "callbacks",
    "loggers",
    "server",
    "api",
    "utils",
    "transport",
]
# The public classes and functions of the submodules LitServe documents, module by module.
SUBMODULE_NAMES = {
    "litserve.api": "LitAPI",
    "litserve.server": "LitServer",
    "litserve.callbacks": "Callback CallbackRunner EventTypes NoopCallback",
    "litserve.loggers": "Logger",
    "litserve.middlewares": "MaxSizeMiddleware RequestCountMiddleware",
    "litserve.loops": "LitLoop Output SingleLoop BatchedLoop StreamingLoop BatchedStreamingLoop ContinuousBatchingLoop "
    "get_default_loop",
    "litserve.specs": "OpenAISpec OpenAIEmbeddingSpec EmbeddingRequest EmbeddingResponse ChatCompletionRequest "
    "ChatCompletionResponse ChatCompletionChunk",
    "litserve.specs.base": "LitSpec",
    "litserve.specs.openai": "UsageInfo TextContent ImageDetail ImageContentURL ImageContent InputAudio AudioContent "
    "Function Tool FunctionCall ToolCall ResponseFormatText ResponseFormatJSONObject JSONSchema "
    "ResponseFormatJSONSchema ChatMessage ChatMessageWithUsage ChoiceDelta ChatCompletionRequest "
    "ChatCompletionResponseChoice ChatCompletionResponse ChatCompletionStreamingChoice ChatCompletionChunk OpenAISpec",
    "litserve.specs.openai_embedding": "EmbeddingRequest Embedding UsageInfo EmbeddingResponse OpenAIEmbeddingSpec",
    "litserve.utils": "LitAPIStatus configure_logging set_log_level add_log_handler set_trace set_trace_if_debug "
    "ForkedPdb is_package_installed wrap_litserve_start",
    "litserve.mcp": "MCP",
    "litserve.schema.image": "ImageInput ImageOutput",
    "litserve.test_examples": "SimpleLitAPI SimpleBatchedAPI SimpleTorchAPI SimpleStreamAPI TestAPI "
    "TestAPIWithCustomEncode TestAPIWithStructuredOutput TestAPIWithToolCalls OpenAIBatchContext",
    "litserve.python_client": "client_template",
    "litserve.constants": "_DEFAULT_LIT_API_PATH",
    "litserve.connector": "check_cuda_with_nvidia_smi _Connector",
}


def test_every_public_name_of_litserve_0_2_19_imports():
    code = f"""
import importlib
import litserve as ls
from litserve import *
missing = [name for name in {LITSERVE_ALL + LITSERVE_DIR!r} if not hasattr(ls, name)]
missing += [name for name in {LITSERVE_ALL!r} if name not in globals()]
missing += [name for name in {LITSERVE_DIR!r} if name not in dir(ls)]
for module, names in {SUBMODULE_NAMES!r}.items():
    loaded = importlib.import_module(module)
    missing += [module + "." + name for name in names.split() if not hasattr(loaded, name)]
print(missing)
"""
    assert run_python(code) == "[]"


def test_the_names_a_worker_imports_load_no_web_framework():
    code = (
        "import sys\n"
        "import litserve as ls\n"
        "from litserve.utils import LitAPIStatus, configure_logging, set_trace, set_trace_if_debug\n"
        "from litserve.loops import ContinuousBatchingLoop, Output, StreamingLoop\n"
        "from litserve.middlewares import MaxSizeMiddleware, RequestCountMiddleware\n"
        "import litserve.constants, litserve.python_client, litserve.connector\n"
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'pdb') if m in sys.modules))"
    )
    assert run_python(code) == "[]"


def test_the_loops_auto_would_pick_can_be_named_and_must_fit():
    assert isinstance(ContinuousBatchingLoop(), LitLoop)
    assert type(get_default_loop(stream=False, max_batch_size=1)) is SingleLoop
    assert type(get_default_loop(stream=False, max_batch_size=8)) is BatchedLoop
    assert type(get_default_loop(stream=True, max_batch_size=1)) is StreamingLoop
    assert type(get_default_loop(stream=True, max_batch_size=8)) is BatchedStreamingLoop
    server = ls.LitServer(ls.test_examples.SimpleBatchedAPI(max_batch_size=4, loop=BatchedLoop()), accelerator="cpu")
    assert server.api_options[0].loop == "auto"
    ls.LitServer(ls.test_examples.SimpleStreamAPI(stream=True, loop=StreamingLoop()), accelerator="cpu")
    with pytest.raises(ValueError, match="needs stream=True"):
        ls.LitServer(ls.test_examples.SimpleLitAPI(loop=StreamingLoop()), accelerator="cpu")
    with pytest.raises(ValueError, match="use BatchedLoop"):
        ls.LitServer(ls.test_examples.SimpleBatchedAPI(max_batch_size=4, loop=SingleLoop()), accelerator="cpu")

    class OwnLoop(LitLoop):
        def run(self, lit_api, device, worker_id, request_queue, transport, workers_setup_status, callback_runner):
            pass

    with pytest.raises(ValueError, match="custom LitLoop subclasses"):
        ls.LitServer(ls.test_examples.SimpleLitAPI(loop=OwnLoop()), accelerator="cpu")


def test_middlewares_are_a_list_of_classes_or_class_kwargs_pairs():
    api = ls.test_examples.SimpleLitAPI()
    middlewares = [(MaxSizeMiddleware, {"max_size": 10}), MaxSizeMiddleware]
    server = ls.LitServer(api, accelerator="cpu", middlewares=middlewares)
    assert len(server.middlewares) == 2
    with pytest.raises(ValueError, match="must be a list"):
        ls.LitServer(api, accelerator="cpu", middlewares=(MaxSizeMiddleware, {"max_size": 10}))
    with pytest.raises(ValueError, match="kwargs"):
        ls.LitServer(api, accelerator="cpu", middlewares=[(MaxSizeMiddleware, 10)])
    with pytest.raises(ValueError, match="max_size"):
        MaxSizeMiddleware(None, max_size=-1)


def test_connector_python_client_and_constants():
    assert check_cuda_with_nvidia_smi() >= 0
    connector = _Connector("cpu")
    assert (connector.accelerator, connector.devices) == ("cpu", 1)
    source = ls.python_client.client_template.format(PORT=8123)
    compile(source, "client.py", "exec")
    assert "http://127.0.0.1:8123/predict" in source
    assert ls.constants._DEFAULT_LIT_API_PATH == "/predict" == ls.LitAPI().api_path


def test_configure_logging_levels_streams_and_errors():
    code = """
import io, logging
import litserve as ls
stream = io.StringIO()
ls.configure_logging("warning", format="%(levelname)s|%(message)s", stream=stream)
logging.getLogger("litserve.x").info("hidden")
logging.getLogger("litserve.x").warning("shown")
ls.configure_logging(logging.DEBUG, stream=stream)  # replaces the handler, no duplicates
logging.getLogger("litserve").debug("again")
lines = stream.getvalue().splitlines()
try:
    ls.configure_logging("loud")
except ValueError as exc:
    lines.append(str(exc))
print(lines[0], len(lines), "again" in lines[1], "unknown logging level" in lines[2])
"""
    assert run_python(code) == "WARNING|shown 3 True True"
