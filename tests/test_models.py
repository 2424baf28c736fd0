"""Backbones: MF and LightGCN against dense references."""

import math

import numpy as np
import pytest
import torch

from adaptau_cli.models import MF, LightGCN, build_model, normalized_adjacency

USERS = np.array([0, 0, 1, 2, 2, 2, 3])
ITEMS = np.array([0, 1, 1, 3, 3, 0, 2])   # (2, 3) twice: counted once


def dense_adjacency(n_users, n_items):
    n = n_users + n_items
    A = np.zeros((n, n))
    for u, i in zip(USERS, ITEMS):
        A[u, n_users + i] = A[n_users + i, u] = 1.0
    deg = A.sum(1)
    dinv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-300)), 0.0)
    return dinv[:, None] * A * dinv[None, :]


def test_adjacency_is_symmetric_normalized_without_self_loops():
    adj = normalized_adjacency(USERS, ITEMS, 5, 4).to_dense().double().numpy()
    ref = dense_adjacency(5, 4)
    np.testing.assert_allclose(adj, ref, rtol=1e-6)
    assert np.all(np.diag(adj) == 0)
    np.testing.assert_allclose(adj, adj.T)
    assert np.all(adj[4] == 0)          # user 4 has no edge


@pytest.mark.parametrize("layers", [0, 1, 3])
def test_lightgcn_is_the_mean_of_propagated_layers(layers):
    torch.manual_seed(0)
    model = LightGCN(5, 4, dim=3, layers=layers).set_graph(USERS, ITEMS)
    A = torch.tensor(dense_adjacency(5, 4), dtype=torch.float32)
    E = torch.cat([model.user_weight, model.item_weight]).detach().clone().requires_grad_(True)
    acc, cur = E, E
    for _ in range(layers):
        cur = A @ cur
        acc = acc + cur
    ref = acc / (layers + 1)
    u, i = model()
    torch.testing.assert_close(torch.cat([u, i]), ref, rtol=1e-5, atol=1e-6)
    g = torch.randn(9, 3)
    (torch.cat([u, i]) * g).sum().backward()
    (ref * g).sum().backward()
    torch.testing.assert_close(torch.cat([model.user_weight.grad, model.item_weight.grad]), E.grad,
                               rtol=1e-5, atol=1e-6)


def test_lightgcn_needs_a_graph_and_dropout_only_in_training():
    model = LightGCN(5, 4, dim=8, layers=2, dropout=0.5)
    with pytest.raises(RuntimeError):
        model()
    model.set_graph(USERS, ITEMS).eval()
    a, b = model()[0], model()[0]
    assert torch.equal(a, b)
    model.train()
    assert not torch.equal(model()[0], model()[0])


def test_mf_returns_tables_xavier_init_and_user_dropout():
    torch.manual_seed(1)
    model = MF(100, 50, dim=16, dropout=0.3)
    bound_u = math.sqrt(6.0 / (100 + 16))
    assert model.user_weight.abs().max() <= bound_u
    assert model.user_weight.abs().max() > 0.8 * bound_u      # uniform over the whole range
    model.eval()
    u, i = model()
    assert u.shape == (100, 16) and i.shape == (50, 16)
    assert torch.equal(u, model.user_weight) and torch.equal(i, model.item_weight)
    model.train()
    u, i = model()
    assert (u == 0).float().mean() > 0.2 and torch.equal(i, model.item_weight)


def test_build_model_by_name():
    assert isinstance(build_model("mf", 3, 4), MF)
    assert isinstance(build_model("lightgcn", 3, 4, layers=2), LightGCN)
    with pytest.raises(ValueError):
        build_model("ngcf", 3, 4)
