"""balancebench.progress: log lines at a bounded rate with a correct ETA, tqdm bars on a terminal, and the
acceptance runs: a real training logs a line per epoch with an ETA; a real 20 ps NVT reports every 10 %."""

import io
import logging
import re

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones

from balancebench.progress import EpochProgress, Progress, format_duration
from balancebench.tasks.cg_benzene.simulation import EV_PER_KCAL_MOL, NVTSettings, run_nvt


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture()
def logger():
    return logging.getLogger("test_progress")


def test_format_duration():
    assert format_duration(42.4) == "42 s"
    assert format_duration(187) == "3:07"
    assert format_duration(2 * 3600 + 3 * 60 + 7) == "2:03:07"
    assert format_duration(None) == "?" and format_duration(float("nan")) == "?"


def test_a_line_per_tenth_with_the_eta_of_a_constant_rate(logger):
    clock = FakeClock()
    progress = Progress(1000, "NVT", logger=logger, clock=clock, stream=io.StringIO())
    for step in range(10, 1001, 10):  # 1 s per 10 steps: 100 s in all
        clock.now += 1.0
        progress.update(step, T=340.0)
    assert len(progress.lines) == 10
    fractions = [int(re.search(r"\((\d+) %\)", line).group(1)) for line in progress.lines]
    assert fractions == list(range(10, 101, 10))
    # at 30 %: 30 s spent, 70 % left at the same rate -> 70 s = 1:10
    assert "300/1000 steps (30 %)" in progress.lines[2] and "ETA 1:10" in progress.lines[2]
    assert "T 340" in progress.lines[2] and progress.lines[-1].endswith("ETA 0 s")
    assert progress.bar is None  # not a terminal


@pytest.mark.parametrize("total, stride", [(125, 5), (1000, 7), (1000, 99), (1000, 100), (100, 35)])
def test_lines_are_at_most_a_tenth_apart_at_any_steady_stride(logger, total, stride):
    progress = Progress(total, "x", logger=logger, clock=FakeClock(), stream=io.StringIO())
    for done in [*range(stride, total, stride), total]:
        progress.update(done)
    logged = [0] + [int(line.split()[1].split("/")[0]) for line in progress.lines]
    gaps = np.diff(logged)
    assert logged[-1] == total and gaps.max() <= max(0.1 * total, stride)
    assert len(progress.lines) <= 2 * 10 + 1  # not a line per update for fine strides


def test_slow_runs_log_every_max_interval(logger):
    clock = FakeClock()
    progress = Progress(10_000, "slow", logger=logger, clock=clock, max_interval=60.0, stream=io.StringIO())
    for step in range(1, 200):  # 0.2 % in 199 * 10 s
        clock.now += 10.0
        progress.update(step)
    assert len(progress.lines) == 1990 // 60


def test_resumed_loop_estimates_from_its_own_progress(logger):
    clock = FakeClock()
    progress = Progress(100, "resumed", logger=logger, clock=clock, start=50, stream=io.StringIO())
    clock.now = 10.0
    progress.update(60)  # 10 units in 10 s, 40 left
    assert progress.eta() == pytest.approx(40.0)
    assert "60/100" in progress.lines[0]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="total"):
        Progress(0, "x")
    with pytest.raises(ValueError, match="every"):
        Progress(10, "x", every=0.0)


def test_terminal_gets_a_tqdm_bar_and_the_log_still_gets_lines(logger):
    terminal = Terminal()
    with Progress(50, "NVT", logger=logger, stream=terminal) as progress:
        assert progress.bar is not None
        for step in range(5, 51, 5):
            progress.update(step, T=300.0)
    out = terminal.getvalue()
    assert "NVT" in out and "50/50" in out and "100%" in out
    assert len(progress.lines) == 10


def row(epoch, seconds=2.0, **extra):
    return {"epoch": epoch, "seconds": seconds, "train_force": 1.5, "train_energy": 0.25, "val_force": 1.75,
            "val_energy": 0.5, "coef_force": 1.0, "coef_energy": 0.01, "lr": 1e-3, "criterion": 0.9, **extra}


def test_epoch_line_has_losses_coefficients_and_eta(logger):
    progress = EpochProgress(logger, max_epochs=10, stream=io.StringIO())
    for epoch in (1, 2, 3):
        progress(row(epoch))
    line = progress.lines[-1]
    assert "epoch 3/10 (30 %)" in line and "train force 1.5 energy 0.25" in line and "val force 1.75 energy 0.5" in line
    assert "coef_energy 0.01" in line and "coef_force 1" in line and "criterion 0.9" in line
    assert "ETA 14 s" in line  # 7 epochs x 2 s


def test_epoch_row_max_epochs_wins_and_a_terminal_gets_a_bar(logger):
    terminal = Terminal()
    progress = EpochProgress(logger, max_epochs=99, stream=terminal)
    for epoch in (4, 5):  # a resumed training: the bar starts at epoch 4
        progress(row(epoch, max_epochs=5))
    assert "epoch 5/5 (100 %)" in progress.lines[-1] and progress.bar is None  # closed at max_epochs
    assert "5/5" in terminal.getvalue()


@pytest.mark.slow
def test_training_logs_a_line_per_epoch_with_an_eta(lj_dataset, tmp_path, caplog):
    from balancebench.training import train_model

    model = dict(hidden_channels=8, num_filters=8, num_interactions=1, num_gaussians=8, cutoff=7.5,
                 prior_sigma=3.5, prior_exponent=12.0)
    training = dict(max_epochs=3, batch_size=8, learning_rate=3e-3, patience=10)
    progress = EpochProgress(logging.getLogger("balancebench.job"), max_epochs=3, stream=io.StringIO())
    with caplog.at_level(logging.INFO, logger="balancebench.job"):
        result = train_model(lj_dataset, model, training, "softadapt", {}, seed=1, out_dir=tmp_path, threads=1,
                             progress=progress)
    assert result.status == "completed", result.reason
    lines = [r.getMessage() for r in caplog.records if "training: epoch" in r.getMessage()]
    assert len(lines) == 3
    for epoch, line in enumerate(lines, start=1):
        assert f"epoch {epoch}/3" in line and re.search(r"ETA (\d+ s|\d+:\d\d)", line), line


def small_lj_liquid(seed=0):
    rng = np.random.default_rng(seed)
    grid = np.array([(i, j, k) for i in range(3) for j in range(3) for k in range(3)], float)
    atoms = Atoms("X27", positions=grid * 5.6 + rng.normal(scale=0.05, size=grid.shape), cell=[16.8] * 3, pbc=True)
    atoms.set_masses(np.full(27, 78.114))
    atoms.calc = LennardJones(sigma=5.0, epsilon=0.6 * EV_PER_KCAL_MOL, rc=7.5, smooth=True)
    return atoms


@pytest.mark.slow
def test_20_ps_nvt_reports_at_least_every_tenth(caplog):
    """As simulate_model wires it: run_nvt's thermo-interval callback -> Progress (step, T, ETA)."""
    settings = NVTSettings(equilibration=0.0, production=20.0, thermo_interval=25, seed=1)
    total = settings.steps(settings.production)
    log = logging.getLogger("balancebench.job")
    with caplog.at_level(logging.INFO, logger="balancebench.job"):
        with Progress(total, "NVT", logger=log, stream=io.StringIO()) as reporter:
            result = run_nvt(small_lj_liquid(), settings,
                             progress=lambda step, n, temperature: reporter.update(step, T=f"{temperature:.1f} K"))
    assert result.status == "completed", result.reason
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("NVT:")]
    steps = [0] + [int(re.search(r"NVT: (\d+)/", line).group(1)) for line in lines]
    assert steps[-1] == total and all(b - a <= 0.1 * total for a, b in zip(steps, steps[1:])), steps
    assert all(re.search(r"T \d+\.\d K", line) and "ETA" in line for line in lines)
