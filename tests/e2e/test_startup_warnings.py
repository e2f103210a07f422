"""Start-up warnings for near-miss hook names and options that are accepted but change nothing."""

from __future__ import annotations

import httpx

import litserve as ls
from litserve.startup_warnings import near_miss_hooks
from tests.apps_first_hour import LookupAPI, TypoHooksAPI


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
