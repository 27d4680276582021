"""LR sensitivity of the recommendation on the quality tasks (figures, not a test).

    .venv/bin/python bench/lr_sweep.py digits-cnn,char-lm

Held-out loss (2 seeds, 200 steps) of the recommended optimizer at its lr x 0.25 ... 64, and Adam(1e-3):
shows how far the tables' lrs are from what a short run on a small proxy wants.
"""

import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from quality import TASKS, _mean_loss, _with_optimizer

from optirec.optimizers.workloads import make_workload
from optirec.rules import default_rulebook, recommend

book = default_rulebook()
names = sys.argv[1].split(",") if len(sys.argv) > 1 else [t.name for t in TASKS]
for t in TASKS:
    if t.name not in names:
        continue
    w = make_workload(t.workload, seed=0, traits=t.traits)
    prof = {**t.profile, "batch_size": w.batch_size, "total_steps": 200}
    rec = recommend(prof)
    hp = rec.optimizer.hyperparameters
    t0 = time.time()
    row = []
    for m in [0.25, 1, 4, 16, 64]:
        r2 = _with_optimizer(rec, rec.optimizer.name, {**hp, "lr": hp["lr"] * m})
        row.append((m, round(_mean_loss(t, r2, 200, [0, 1]), 4)))
    adam = _with_optimizer(rec, "adam", {**book.defaults["adam"], "lr": 1e-3})
    print(
        t.name,
        rec.optimizer.name,
        hp["lr"],
        row,
        "adam1e-3",
        round(_mean_loss(t, adam, 200, [0, 1]), 4),
        f"{time.time() - t0:.0f}s",
        flush=True,
    )
