"""The call gate (itool/gate.py): the features are the named layer's state at the prompt's last
position, the fit separates what can be separated whatever the class balance, and a saved gate
reads back to the same decisions or fails naming its file."""
import pytest
import torch

from itool import gate, modeling

pytestmark = pytest.mark.usefixtures("one_thread")


def test_features_are_the_named_layers_state_at_the_prompts_last_position(tiny_model_dir, tiny_tokenizer,
                                                                           synthetic_samples):
    model = modeling.load_model(tiny_model_dir, device=torch.device("cpu")).float()
    samples = synthetic_samples[:3]
    layer = gate.default_layer(model)
    assert 1 <= layer < model.config.num_hidden_layers
    X = gate.features(model, tiny_tokenizer, samples, layer)
    for row, sample in zip(X, samples):
        ids = modeling.encode_prompt(tiny_tokenizer, sample["system"], sample["messages"])
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):  # as features() runs it
            hidden = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
        torch.testing.assert_close(row, hidden[layer][0, -1].float())
        assert not torch.allclose(row, hidden[layer + 1][0, -1].float())


def test_the_fit_separates_a_rare_class_and_reads_back_from_its_file(tmp_path):
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(200, 16, generator=generator) * 3 + 10  # off-centre, unscaled: the fit standardises
    direction = torch.randn(16, generator=generator)
    margin = (X - X.mean(0)) @ direction
    margin = margin - margin.quantile(0.1)  # one text in ten, as in the warm-up data
    X = X[margin.abs() > 5]  # a gap between the classes that any right fit finds
    is_call = (margin[margin.abs() > 5] > 0).tolist()
    fitted = gate.fit(X, is_call)
    assert ((gate.score(fitted, X) > 0).tolist()) == is_call

    gate.save(tmp_path / gate.GATE_FILE, fitted, layer=5, info={"texts": 20, "calls": 180})
    saved = gate.read(tmp_path)
    assert saved["layer"] == 5
    assert ((gate.score(saved, X) > 0).tolist()) == is_call
    assert gate.read(None) is None and gate.read(tmp_path / "elsewhere") is None
    with pytest.raises(ValueError, match="calls and texts"):
        gate.fit(X, [True] * len(X))
    (tmp_path / gate.GATE_FILE).write_text('{"layer": 5, "bias": 0, "mean": [1], "std": [1, 2], "weight": [1]}')
    with pytest.raises(ValueError, match=gate.GATE_FILE):
        gate.read(tmp_path)
