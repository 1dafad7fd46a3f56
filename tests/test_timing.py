"""t_ep / sigma_ep as counted work: identical on a loaded machine, and they see the method's extra passes."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from balancebench.stats import StatsSettings, evaluate, validate_metrics_table
from balancebench.timing import (
    calibrate,
    count_epochs,
    machine_model,
    pinned_calibration,
    time_run,
    timing_metrics,
    trainer_from_run,
)
from balancebench.training import train_model

MODEL = dict(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=8, cutoff=7.5,
             prior_sigma=3.5, prior_exponent=12.0)
TRAINING = dict(max_epochs=1, batch_size=8, learning_rate=3e-3, lr_decay=0.97, patience=5)
VARIANTS = ("constant", "softadapt", "mgda")
SEEDS = (1, 2)


@pytest.fixture(scope="module")
def trained(lj_dataset, tmp_path_factory):
    """Three variants x two seeds, one epoch each: (hparams, weights) per run."""
    torch.set_num_threads(1)
    runs = []
    for variant in VARIANTS:
        for seed in SEEDS:
            out = tmp_path_factory.mktemp(f"{variant}{seed}")
            train_model(lj_dataset, MODEL, TRAINING, variant, {}, seed=seed, out_dir=out, threads=1)
            runs.append((json.loads((out / "hparams.json").read_text()), torch.load(out / "model.pt")))
    return runs


def _evaluate_runs(dataset, runs):
    """Calibrate on this machine now, time every run, rank t_ep and sigma_ep."""
    reference = trainer_from_run(dataset, runs[0][0], runs[0][1])
    calibration = calibrate(reference, repeats=3)
    rows, work = [], {}
    for hparams, weights in runs:
        record = time_run(dataset, hparams, weights, calibration, epochs=2)
        work[(record["method"], record["seed"])] = record["epoch_flops"]
        for metric in ("t_ep", "sigma_ep"):
            rows.append({"method": record["method"], "seed": str(record["seed"]), "metric": metric,
                         "value": repr(record[metric]), "status": "completed"})
    table = validate_metrics_table(pd.DataFrame(rows))
    ev = evaluate(table, StatsSettings(posthoc="dunn"))
    return ev, work, calibration


def test_scores_and_ordering_do_not_move_under_cpu_load(lj_dataset, trained):
    torch.set_num_threads(1)
    idle, work_idle, cal_idle = _evaluate_runs(lj_dataset, trained)
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        loaded, work_loaded, cal_loaded = _evaluate_runs(lj_dataset, trained)
    finally:
        burner.kill()
        burner.wait()
    assert work_idle == work_loaded  # the counted work is exact, load-free
    pd.testing.assert_frame_equal(idle.ranking[["t_ep", "sigma_ep", "total", "rank"]],
                                  loaded.ranking[["t_ep", "sigma_ep", "total", "rank"]])
    assert idle.ordering == loaded.ordering
    # the gradient method does two backward passes through the force double backward: more work per epoch
    mean_work = {m: np.mean([w for (mm, _), ws in work_idle.items() if mm == m for w in ws]) for m in VARIANTS}
    assert mean_work["mgda"] > 1.3 * mean_work["constant"]
    assert mean_work["softadapt"] == mean_work["constant"]  # value methods: one backward pass, same work
    assert idle.ordering.startswith(("constant = softadapt >", "softadapt = constant >"))
    assert idle.ordering.endswith("> mgda")
    assert cal_idle.machine == machine_model() and cal_loaded.flop_rate > 0


def test_epoch_work_is_a_permutation_invariant_count(lj_dataset, trained):
    hparams, weights = trained[0]
    first = count_epochs(trainer_from_run(lj_dataset, hparams, weights), epochs=3)
    again = count_epochs(trainer_from_run(lj_dataset, hparams, weights), epochs=3)
    assert first == again and len(set(first)) == 1 and first[0] > 0  # same frames each epoch: same work


def test_timing_metrics_formula_and_pinned_rate():
    values = timing_metrics([4e9, 6e9], 1e9)
    assert values == {"t_ep": 5.0, "sigma_ep": 1.0, "flops_ep": 5e9}
    assert pinned_calibration(2e9).pinned
    with pytest.raises(ValueError, match="flop_rate"):
        pinned_calibration(0.0)
    with pytest.raises(ValueError, match="non-negative"):
        timing_metrics([], 1e9)


def test_counted_work_record_is_machine_free_and_converted_at_the_calibration(lj_dataset, tmp_path):
    """Rule train writes the counted work of its model directory; rule model_metrics converts it to seconds.
    The split gives the numbers time_run gives in one pass; a failed count stays a status with its reason."""
    from balancebench.timing import counted_work_record, timing_record

    torch.set_num_threads(1)
    train_model(lj_dataset, MODEL, TRAINING, "softadapt", {}, seed=4, out_dir=tmp_path, threads=1)
    work = counted_work_record(lj_dataset, tmp_path, epochs=2)
    assert work["status"] == "completed" and len(work["epoch_flops"]) == 2 and min(work["epoch_flops"]) > 0
    assert "t_ep" not in work and "calibration" not in work  # nothing of the machine in it
    calibration = pinned_calibration(2e9)
    record = timing_record(work, calibration.to_dict())
    hparams = json.loads((tmp_path / "hparams.json").read_text())
    direct = time_run(lj_dataset, hparams, torch.load(tmp_path / "model.pt"), calibration, epochs=2)
    for key in ("epoch_flops", "t_ep", "sigma_ep", "flops_ep", "calibration"):
        assert record[key] == direct[key]
    assert record["t_ep"] == pytest.approx(np.mean(work["epoch_flops"]) / 2e9)

    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    failed = counted_work_record(lj_dataset, tmp_path, epochs=2)
    assert failed["status"] == "failed" and failed["reason"].startswith("InputFileError")  # names the file (fileio)
    assert "UnpicklingError" in failed["reason"] and str(tmp_path / "model.pt") in failed["reason"]
    assert timing_record(failed, calibration.to_dict()) == failed
