"""Meta-training of the learned optimizer by truncated backpropagation through time (TBPTT).

Andrychowicz et al. 2016 (arXiv 1606.04474): an episode draws a problem (a batch of
optimisees) and runs ``unrolls_per_episode`` x ``unroll`` optimizer steps from its start::

    theta_{t+1} = theta_t + lr * m_phi(g_1(theta_t), .., g_k(theta_t), history)    (inputs detached)
    meta-loss of one unroll = 1/T sum_{t=1..T} sum_i f_i(theta_t) / f_i^ref

After each unroll the meta-loss is backpropagated into the optimizer's weights phi (through
theta_t and the recurrent states, never through the gradient inputs: those are data, so no
third derivative of a model trained on its derivatives appears), the meta-gradient is clipped to norm ``clip`` and
Adam (``meta_lr``) takes a step; theta and the states are then cut from the graph
(truncation). The problems of episode e come from a generator seeded with (seed, e), so
the run is a pure function of the settings; a checkpoint after every episode (weights,
Adam state, log) makes a killed run resume bit-identically on CPU.

The meta-trained module is the unguarded ML2O; GML2O wraps the same module in the guard.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from balancebench.checkpoints import atomic_torch_save, torch_load
from balancebench.l2o.net import MultiGradientOptimizer, OptimizerSpec
from balancebench.l2o.problems import QuadraticBatch, family_from_dict
from balancebench.provenance import run_hash
from balancebench.seeding import deterministic_algorithms
from balancebench.settings import settings_from_section

log = logging.getLogger(__name__)

__all__ = ["MetaSettings", "compare_with_mgda", "episode_generator", "meta_train", "run_learned", "run_mgda"]


@dataclass
class MetaSettings:
    """Meta-training settings (config ``l2o.meta``)."""

    seed: int = 0
    episodes: int = 60
    unroll: int = 20
    unrolls_per_episode: int = 5
    meta_lr: float = 3.0e-3
    clip: float = 1.0
    families: dict = field(default_factory=lambda: {"quadratic": {}})
    heldout_seeds: int = 3  # held-out problem batches of the quadratic family for the record
    heldout_steps: int = 100

    def __post_init__(self) -> None:
        for name in ("episodes", "unroll", "unrolls_per_episode", "heldout_seeds", "heldout_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < (0 if name in ("episodes", "heldout_seeds") else 1):
                raise ValueError(f"l2o.meta.{name} must be a non-negative (or positive) integer, got {v!r}")
        if not self.meta_lr > 0 or not self.clip > 0:
            raise ValueError("l2o.meta.meta_lr and l2o.meta.clip must be > 0")
        if not isinstance(self.families, dict) or not self.families:
            raise ValueError("l2o.meta.families must name at least one family (quadratic, lj_schnet)")
        self._families = {name: family_from_dict(name, d) for name, d in self.families.items()}
        if sum(f.weight for f in self._families.values()) <= 0:
            raise ValueError("l2o.meta.families: at least one family needs a weight > 0")

    @classmethod
    def from_dict(cls, d: dict) -> MetaSettings:
        return settings_from_section(cls, d, "l2o.meta")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["families"] = {n: f.to_dict() for n, f in self._families.items()}
        return d

    def family_for(self, episode: int):
        """(name, family, generator) of episode ``episode`` (a pure function of seed and episode)."""
        ss = np.random.SeedSequence([self.seed, episode])
        names = sorted(self._families)
        w = np.array([self._families[n].weight for n in names], float)
        pick = np.random.default_rng(ss).choice(len(names), p=w / w.sum())
        return names[pick], self._families[names[pick]], episode_generator(self.seed, episode)


def episode_generator(seed: int, episode: int, stream: int = 0) -> torch.Generator:
    """CPU generator seeded from (seed, episode, stream)."""
    state = np.random.SeedSequence([int(seed), int(episode), int(stream)]).generate_state(2, dtype=np.uint32)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(state[0]) << 32 | int(state[1]))
    return gen



_atomic_save = atomic_torch_save  # balancebench.fileio: temp file, fsync, os.replace


def _unrolls(net, problem, settings: MetaSettings, meta_opt, train: bool = True) -> list[float]:
    """Run one episode on ``problem``; with ``train`` take one meta-step per unroll. Returns the unroll meta-losses."""
    theta = problem.start()
    state = net.init_state(theta.numel(), dtype=net.out.weight.dtype)
    value, grads, _ = problem.evaluate(theta)
    losses = []
    for _ in range(settings.unrolls_per_episode):
        meta = 0.0
        for _t in range(settings.unroll):
            m, state = net(grads, state)
            state = net.record_applied(state, m)
            theta = theta + problem.lr * m.to(theta.dtype)
            value, grads, _ = problem.evaluate(theta)
            meta = meta + value
        meta = meta / settings.unroll
        losses.append(float(meta.detach()) if torch.is_tensor(meta) else float(meta))
        if train:
            meta_opt.zero_grad(set_to_none=True)
            if math.isfinite(float(meta.detach())):
                meta.backward()
                total = torch.nn.utils.clip_grad_norm_(net.parameters(), settings.clip)
                if math.isfinite(float(total)):
                    meta_opt.step()
        theta = theta.detach()
        state = net.detach_state(state)
        if not math.isfinite(float(value.detach())):
            break  # a diverged optimisee: the episode ends, the next one starts afresh
    return losses


def meta_train(spec: OptimizerSpec, settings: MetaSettings, checkpoint: str | Path | None = None,
               progress=None, problems_key: dict | None = None) -> tuple[MultiGradientOptimizer, dict]:
    """Meta-train a fresh optimizer; returns (network, record). Resumes from ``checkpoint`` when it matches.

    ``progress(episode, row)`` is called after every episode's checkpoint (it may raise to
    stop the run, as a kill would). The record holds the settings, the per-episode mean
    meta-loss, the wall time of this process and the episode it resumed from.
    """
    for name, family in settings._families.items():
        k = family.n_objectives if name == "task" else 2
        if k != spec.n_objectives:
            raise ValueError(f"the meta-training family {name!r} has {k} objectives, the optimizer is built for "
                             f"{spec.n_objectives}")
    deterministic_algorithms()
    key = run_hash({"spec": spec.to_dict(), "settings": settings.to_dict(), "problems": problems_key or {}})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        net = MultiGradientOptimizer(spec)
    meta_opt = torch.optim.Adam(net.parameters(), lr=settings.meta_lr)
    curve, start, resumed = [], 0, 0
    ckpt = Path(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.exists():
        state = torch_load(ckpt, "meta-training checkpoint", rebuild=f"rm {ckpt}  (meta-training then starts afresh)")
        if state.get("key") == key:
            net.load_state_dict(state["net"])
            meta_opt.load_state_dict(state["meta_opt"])
            curve, start = list(state["curve"]), int(state["episode"])
            resumed = start
            log.info("meta-training resumes after episode %d", start)
        else:
            log.warning("checkpoint %s belongs to other settings: meta-training starts afresh", ckpt)
    t0 = time.perf_counter()
    for episode in range(start, settings.episodes):
        name, family, gen = settings.family_for(episode)
        problem = family.sample(gen)
        losses = _unrolls(net, problem, settings, meta_opt, train=True)
        row = {"episode": episode + 1, "family": name, "meta_loss": float(np.mean(losses))}
        curve.append(row)
        if ckpt is not None:
            _atomic_save({"key": key, "episode": episode + 1, "net": net.state_dict(),
                          "meta_opt": meta_opt.state_dict(), "curve": curve}, ckpt)
        if progress is not None:
            progress(episode + 1, row)
    record = {"spec": spec.to_dict(), "settings": settings.to_dict(), "curve": curve,
              "episodes": settings.episodes, "seconds_this_process": time.perf_counter() - t0,
              "resumed_from_episode": resumed, "key": key}
    return net, record


# --------------------------------------------------------------------------------------
# Running a (meta-trained or not) optimizer, and MGDA, on a problem
# --------------------------------------------------------------------------------------


@torch.no_grad()
def run_learned(net: MultiGradientOptimizer, problem, steps: int) -> torch.Tensor:
    """Per-problem normalised total loss (B,) after ``steps`` ML2O steps (unguarded)."""
    theta = problem.start()
    state = net.init_state(theta.numel(), dtype=net.out.weight.dtype)
    for _ in range(steps):
        _, grads, _ = problem.evaluate(theta)
        m, state = net(grads, state)
        state = net.record_applied(state, m)
        theta = theta + problem.lr * m.to(theta.dtype)
    return problem.evaluate(theta)[2]


def _batched_min_norm(g: torch.Tensor) -> torch.Tensor:
    """Min-norm element of conv{g_1, g_2} per problem; g (B, 2, n) -> (B, n) (closed form, Sener & Koltun Alg. 1)."""
    g1, g2 = g[:, 0], g[:, 1]
    diff = g1 - g2
    den = (diff * diff).sum(-1)
    gamma = torch.where(den > 1e-30, ((g2 - g1) * g2).sum(-1) / den.clamp_min(1e-300), torch.full_like(den, 0.5))
    gamma = gamma.clamp(0.0, 1.0)[:, None]
    return gamma * g1 + (1 - gamma) * g2


@torch.no_grad()
def run_mgda(problem: QuadraticBatch, steps: int, factor: float = 1.0) -> torch.Tensor:
    """Per-problem normalised total (B,) after ``steps`` MGDA steps x <- x - (factor / L) d_min-norm."""
    eta = (factor / problem.smoothness())[:, None]
    x = problem.start().reshape(problem.batch, -1)
    for _ in range(steps):
        g = problem.per_problem_grads(x.reshape(-1))
        if problem.noise > 0:
            g = problem.gradients(x.reshape(-1)).reshape(2, problem.batch, -1).permute(1, 0, 2)
        x = x - eta * _batched_min_norm(g)
    return problem.evaluate(x.reshape(-1))[2]


MGDA_FACTORS = (0.25, 0.5, 1.0, 1.5)


def compare_with_mgda(net: MultiGradientOptimizer, family, seeds, steps: int) -> dict:
    """Final normalised total loss of ML2O and of MGDA (step (factor / L), the best factor of MGDA_FACTORS
    chosen on these very problems) on held-out problem batches (generator stream 1, never used in training)."""
    ml2o, mgda = [], {f: [] for f in MGDA_FACTORS}
    for s in seeds:
        ml2o.append(run_learned(net, family.sample(episode_generator(s, 0, stream=1)), steps))
        for f in MGDA_FACTORS:
            mgda[f].append(run_mgda(family.sample(episode_generator(s, 0, stream=1)), steps, f))
    best = min(MGDA_FACTORS, key=lambda f: float(torch.cat(mgda[f]).nanmean()) if torch.cat(mgda[f]).isfinite().all()
               else math.inf)
    a, b = torch.cat(ml2o), torch.cat(mgda[best])
    return {"steps": steps, "seeds": list(seeds), "problems": int(a.numel()), "mgda_step_factor": best,
            "ml2o_final": float(a.mean()), "mgda_final": float(b.mean()),
            "ml2o_median": float(a.median()), "mgda_median": float(b.median()),
            "ml2o_wins": float((a < b).double().mean())}


# --------------------------------------------------------------------------------------
# The workflow entry point (rule meta_train_l2o)
# --------------------------------------------------------------------------------------


def run_meta_training(l2o_config: dict, optimizer_path: str | Path, record_path: str | Path,
                      checkpoint: str | Path | None = None, n_objectives: int = 2, threads: int | None = None,
                      progress=None, provenance: dict | None = None, task=None, dataset=None,
                      model_config: dict | None = None, training: dict | None = None,
                      curve_path: str | Path | None = None, plot_path: str | Path | None = None) -> dict:
    """Meta-train from the config section ``l2o`` and write the artifact and its JSON record.

    The record: the optimizer sizes and version, the settings, the per-episode meta-loss,
    the wall time of meta-training (this process; ``resumed_from_episode`` says whether an
    earlier process did part of it), and the held-out comparison with MGDA on the
    quadratic family (:func:`compare_with_mgda`) and, with the family ``task`` (bound here to ``task``,
    ``dataset``, ``model_config`` and ``training``, the run's sections), against Adam and plain GD on held-out
    trainings of the task (:func:`balancebench.l2o.task_family.compare_on_task`). ``curve_path`` /
    ``plot_path``: the meta-loss per episode as CSV and a picture (with a moving mean). Returns the record.
    """
    from balancebench.l2o.artifact import ARTIFACT_VERSION, save_optimizer

    if threads:
        torch.set_num_threads(int(threads))
    cfg = dict(l2o_config or {})
    spec = OptimizerSpec.from_dict({**cfg.get("optimizer", {}), "n_objectives": int(n_objectives)})
    settings = MetaSettings.from_dict(dict(cfg.get("meta", {})))
    if "task" in settings._families:
        if task is None or dataset is None:
            raise ValueError("l2o.meta.families.task trains the run's own task: run_meta_training needs task= and "
                             "dataset= (the rule meta_train_l2o passes them)")
        family = settings._families["task"].bind(task, dataset, model_config or {}, training or {})
        spec = OptimizerSpec.from_dict({**cfg.get("optimizer", {}), "n_objectives": family.n_objectives})
    # what the task family trains on (model, training section, data) belongs to the resume key: a checkpoint of
    # other problems is not resumed
    problems_key = ({"task": task.name, "model": model_config or {}, "training": training or {},
                     "data": [hashlib.sha256(x if isinstance(x, bytes) else str(x).encode()).hexdigest()
                              for x in task.data_fingerprint(dataset, "train")]}
                    if "task" in settings._families else {})
    t0 = time.perf_counter()
    net, record = meta_train(spec, settings, checkpoint=checkpoint, progress=progress, problems_key=problems_key)
    train_seconds = time.perf_counter() - t0
    heldout = None
    heldout_task = None
    seeds = [10_000 + settings.seed * 100 + i for i in range(settings.heldout_seeds)]
    if settings.heldout_seeds > 0 and "quadratic" in settings._families:
        heldout = compare_with_mgda(net, settings._families["quadratic"], seeds, settings.heldout_steps)
    if settings.heldout_seeds > 0 and "task" in settings._families:
        from balancebench.l2o.task_family import compare_on_task

        heldout_task = compare_on_task(net, settings._families["task"], seeds, settings.heldout_steps)
    record.update({"artifact_version": ARTIFACT_VERSION, "meta_training_seconds": train_seconds,
                   "heldout_quadratic": heldout, "heldout_task": heldout_task, "threads": torch.get_num_threads(),
                   "provenance": provenance or {}})
    save_optimizer(net, optimizer_path, record)
    Path(record_path).parent.mkdir(parents=True, exist_ok=True)
    Path(record_path).write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    if curve_path is not None or plot_path is not None:
        write_meta_curve(record["curve"], curve_path, plot_path)
    if checkpoint is not None and Path(checkpoint).exists():
        Path(checkpoint).unlink()  # finished: a rerun with -f starts afresh
    return record


def write_meta_curve(curve: list[dict], csv_path: str | Path | None, png_path: str | Path | None,
                     window: int = 10) -> None:
    """The meta-loss per episode (CSV: episode, family, meta_loss, moving_mean over ``window`` episodes of the
    same family) and its picture: is meta-training seen to converge."""
    import pandas as pd

    df = pd.DataFrame(curve, columns=["episode", "family", "meta_loss"])
    df["moving_mean"] = df.groupby("family")["meta_loss"].transform(
        lambda x: x.rolling(window, min_periods=1).mean())
    if csv_path is not None:
        Path(csv_path).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(csv_path, index=False)
    if png_path is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        for name, g in df.groupby("family"):
            ax.plot(g["episode"], g["meta_loss"], ".", alpha=0.35, label=f"{name}: per episode")
            ax.plot(g["episode"], g["moving_mean"], "-", label=f"{name}: mean of {window}")
        ax.set_xlabel("episode")
        ax.set_ylabel("meta-loss (unroll mean)")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
        fig.tight_layout()
        Path(png_path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png_path, dpi=110)
        plt.close(fig)
