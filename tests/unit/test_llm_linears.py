"""The CPU linear layers ``prepare_cpu_linears`` installs compute what the model's own ``nn.Linear`` did."""

import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from litserve.llm import linears  # noqa: E402
from litserve.llm.linears import prepare_cpu_linears  # noqa: E402
from litserve.llm.testing import build_tiny_model  # noqa: E402


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    path = build_tiny_model(str(tmp_path_factory.mktemp("linears") / "model"), hidden_size=128, num_layers=2)
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


@pytest.mark.parametrize("rows", [1, 2, 5, 64])
def test_prepared_model_gives_the_same_logits(tiny_model, rows):
    prepared = copy.deepcopy(tiny_model)
    assert prepare_cpu_linears(prepared) == 2 * 7 + 1  # q, k, v, o, gate, up, down a layer, and lm_head
    ids = torch.arange(3, 3 + rows).unsqueeze(0)
    with torch.inference_mode():
        expected = tiny_model(input_ids=ids).logits
        got = prepared(input_ids=ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_large_weights_keep_no_plain_copy(tiny_model, monkeypatch):
    """A weight from SMALL_WEIGHT_ELEMENTS on is held packed only: the model's memory does not double."""
    monkeypatch.setattr(linears, "SMALL_WEIGHT_ELEMENTS", 128 * 128)
    prepared = copy.deepcopy(tiny_model)
    prepare_cpu_linears(prepared)
    matmuls = [module.forward for module in prepared.modules() if isinstance(module.forward, linears._Matmul)]
    if not matmuls or matmuls[0].packed is None:
        pytest.skip("this torch has no oneDNN linear")
    assert all(matmul.weight is None for matmul in matmuls)  # o_proj, down_proj, lm_head: all 128 x 128 or more
    ids = torch.arange(3, 4).unsqueeze(0)
    with torch.inference_mode():
        torch.testing.assert_close(
            prepared(input_ids=ids).logits, tiny_model(input_ids=ids).logits, rtol=1e-4, atol=1e-4
        )
