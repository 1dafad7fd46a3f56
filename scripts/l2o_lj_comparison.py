"""ML2O / GML2O against MGDA and constant weights on a Lennard-Jones bead liquid (small SchNet, a few epochs).

    PYTHONPATH=src python scripts/l2o_lj_comparison.py results/l2o/optimizer.pt [epochs] [seeds]

Prints, per method and seed, the training status, the best validation criterion
MSE_F / Var(F) + MSE_E / Var(E) (the trainer's, lower is better) and, for gml2o, the
per-epoch acceptance of the learned update. A quick check of transfer from the
meta-training problems to force matching; not a benchmark verdict (that is the workflow's).
"""

import sys
import tempfile

import torch

sys.path.insert(0, "tests")
from conftest import lennard_jones_bead_dataset  # noqa: E402

from balancebench.training import train_model  # noqa: E402

path = sys.argv[1]
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
seeds = range(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
torch.set_num_threads(1)
data = lennard_jones_bead_dataset()
model = {"hidden_channels": 16, "num_filters": 16, "num_interactions": 2, "num_gaussians": 16, "cutoff": 7.5,
         "prior_sigma": 3.5, "prior_exponent": 12.0}
training = {"max_epochs": epochs, "batch_size": 4, "learning_rate": 3e-3, "lr_decay": 0.97, "patience": epochs}
methods = {"constant": {"weights": [1.0, 0.1]}, "mgda": {}, "ml2o": {"optimizer_path": path},
           "gml2o": {"optimizer_path": path}}
for seed in seeds:
    for name, params in methods.items():
        with tempfile.TemporaryDirectory() as out:
            res = train_model(data, model, training, name, params, seed=seed, out_dir=out, threads=1)
        acc = [round(r.get("acceptance", float("nan")), 2) for r in res.log] if name == "gml2o" else ""
        print(f"seed {seed} {name:9s} {res.status:9s} best criterion {res.best_criterion:.4g} "
              f"(epoch {res.best_epoch}) {acc} {res.reason if res.status != 'completed' else ''}", flush=True)
