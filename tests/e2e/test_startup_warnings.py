"""Start-up warnings for near-miss hook names and options that are accepted but change nothing."""

from __future__ import annotations

import inspect

import httpx
import openai

import litserve as ls
from litserve.llm import LLMAPI
from litserve.loops import ContinuousBatchingLoop
from litserve.startup_warnings import near_miss_hooks
from litserve.test_examples import openai_embedding_spec_example, openai_spec_example, simple_example
from tests.apps_continuous import CountingGenerator
from tests.apps_first_hour import LookupAPI, TypoHooksAPI
from tests.conftest import warnings_in


def test_misspelt_hooks_and_ineffective_options_are_named_in_the_log(serve):
    server = serve(
        "tests.apps_first_hour:TypoHooksAPI",
        fast_queue=True,
        run_kwargs={"api_server_worker_type": "thread"},
    )
    # The misspelt decode_requests is not called: the whole body reaches predict.
    assert httpx.post(f"{server.url}/predict", json={"input": 1}).json() == {"got": {"input": 1}}
    warnings = [line for line in server.output().splitlines() if line.startswith("WARNING")]
    assert any("TypoHooksAPI.decode_requests" in w and "'decode_request'" in w for w in warnings), warnings
    assert any("TypoHooksAPI.setup_model" in w and "'setup'" in w for w in warnings), warnings
    assert any("fast_queue=True has no effect" in w for w in warnings), warnings
    assert any("api_server_worker_type='thread' has no effect" in w for w in warnings), warnings


def test_a_correct_server_starts_without_warnings(serve):
    server = serve("tests.apps:SquareAPI", run_kwargs={"api_server_worker_type": "process"})
    assert httpx.post(f"{server.url}/predict", json={"input": 3}).json() == {"output": 9}
    assert "WARNING" not in server.output()


class HelperMethodsAPI(ls.LitAPI):
    def setup(self, device):
        self.model = self.load_weights()

    def load_weights(self):
        return abs

    def predict(self, x):
        return self.postprocess(self.model(x))

    def postprocess(self, y):
        return y


def test_helper_methods_with_their_own_names_are_not_flagged():
    assert near_miss_hooks(HelperMethodsAPI()) == []
    assert near_miss_hooks(LookupAPI()) == []
    assert len(near_miss_hooks(TypoHooksAPI())) == 2


def test_other_near_misses():
    class Misspelt(ls.LitAPI):
        def predcit(self, x):
            return x

        def predict(self, x):
            return x

        def encode_responses(self, y):
            return y

        def unbatch_fn(self, y):
            return y

    flagged = {w.split(" ")[0] for w in near_miss_hooks(Misspelt())}
    assert flagged == {"Misspelt.predcit", "Misspelt.encode_responses", "Misspelt.unbatch_fn"}


def test_continuous_batching_hooks_are_hooks_and_their_near_misses_are_flagged(tmp_path):
    # LLMAPI and a user's continuous-batching API define add_request, step, has_capacity, ... : real hooks.
    assert set(ContinuousBatchingLoop.hooks) <= {name for name, _ in inspect.getmembers(LLMAPI, callable)}
    assert near_miss_hooks(LLMAPI.__new__(LLMAPI)) == []
    assert near_miss_hooks(CountingGenerator(str(tmp_path))) == []

    class Typos(CountingGenerator):
        def add_requests(self, uid, request):
            return super().add_request(uid, request)

        def has_capacity_fn(self):
            return True

    flagged = sorted(w.split(" ")[0] for w in near_miss_hooks(Typos(str(tmp_path))))
    assert flagged == ["Typos.add_requests", "Typos.has_capacity_fn"]


BUILTIN_MODULES = (simple_example, openai_spec_example, openai_embedding_spec_example)


def test_no_builtin_api_looks_misspelt():
    classes = [
        cls
        for module in BUILTIN_MODULES
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__
    ]
    assert len(classes) >= 19
    assert {c.__name__: near_miss_hooks(c()) for c in classes} == {c.__name__: [] for c in classes}


def test_builtin_apis_start_and_serve_without_a_warning(serve):
    # One server for one class of each kind: plain, batched, torch, stream, OpenAI chat and embeddings.
    apis = {
        "litserve.test_examples:SimpleLitAPI": {"api_path": "/simple"},
        "litserve.test_examples:SimpleBatchedAPI": {"api_path": "/batched", "max_batch_size": 4},
        "litserve.test_examples:SimpleTorchAPI": {"api_path": "/torch"},
        "litserve.test_examples:SimpleStreamAPI": {"api_path": "/stream", "stream": True},
        "litserve.test_examples.openai_spec_example:TestAPI": {"spec": {"__spec__": "openai"}},
        "litserve.test_examples.openai_embedding_spec_example:TestEmbedAPI": {"spec": {"__spec__": "openai_embedding"}},
    }
    server = serve(list(apis), api_kwargs=list(apis.values()))
    assert httpx.post(f"{server.url}/simple", json={"input": 3}).json() == {"output": 9}
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    # OpenAISpec APIs answer whatever model a request names (their model_name is the class name), as LitServe's.
    chat = client.chat.completions.create(model="lit", messages=[{"role": "user", "content": "hi"}])
    assert chat.choices[0].message.content == "This is a generated output"
    assert len(client.embeddings.create(model="lit", input="hi").data[0].embedding) == 768
    assert warnings_in(server.output()) == []
