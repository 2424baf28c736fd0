"""Adap-τ on a model adaptau does not ship: a two-tower whose item tower mixes an id embedding with side features.

    python examples/custom_model.py [--dataset synthetic|synthetic-tiny] [--epochs 15] [--out runs/two-tower]

Everything goes through the public API: the trainer takes any module with
forward() -> (user vectors, item vectors) and raw_tables() (the tables L2 and the
magnitude plots read). Prints test Recall@20 / NDCG@20 and writes the plots.
"""

import argparse

import torch

import adaptau_cli as at


class TwoTower(torch.nn.Module):
    def __init__(self, n_users: int, item_features: torch.Tensor, dim: int = 64):
        super().__init__()
        self.users = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(n_users, dim)))
        self.items = torch.nn.Parameter(torch.nn.init.xavier_uniform_(torch.empty(len(item_features), dim)))
        self.mix = torch.nn.Linear(item_features.shape[1], dim, bias=False)
        self.register_buffer("features", item_features)

    def raw_tables(self):
        return self.users, self.items

    def forward(self):
        return self.users, self.items + self.mix(self.features)


def main(dataset: str, epochs: int, out: str) -> dict:
    data_cfg = at.PreprocessConfig(dataset=dataset)
    data = at.prepare_dataset(data_cfg)
    model = TwoTower(data.n_users, torch.as_tensor(at.synthetic_item_features(dataset, data.item_ids)))
    settings = at.TrainConfig(epochs=epochs, tau_mode="adap-tau", warmup_epochs=2)
    result = at.train(settings, data_cfg, data, out, model=model)   # best epoch reloaded into model
    users, items, _ = at.scoring_embeddings(model, settings.norm)
    test = at.evaluate(data, users, items).metrics
    magnitude = at.analyze_magnitude(data, users, items, model.raw_tables()[1].detach().norm(dim=1).numpy(),
                                     history=result.history, label="two-tower")
    at.write_magnitude_plots([magnitude], f"{out}/plots")
    print(f"two-tower, Adap-τ: test Recall@20 {test['recall@20']:.4f}  NDCG@20 {test['ndcg@20']:.4f}  "
          f"(best epoch {result.best_epoch}, tau0 {result.tau0:.3f}; plots in {out}/plots)")
    return test


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="synthetic", choices=["synthetic", "synthetic-tiny"])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--out", default="runs/two-tower")
    main(**vars(ap.parse_args()))
