"""Progress of long loops for a person: lines in the rule log at a bounded rate, a tqdm bar on a terminal.

:class:`Progress` follows ``done`` of ``total`` units (MD steps, frames, epochs, candidates). It logs a line
when the next update, at the stride of the last one, would leave more than ``every`` of the run (default
10 %) since the last line, so lines are at most ``every`` apart when updates come at a steady stride (or at
every update when one stride is longer); also when ``max_interval`` seconds passed since the last line, and at
the end. Each line has the fraction, the rate and the estimated time left,

    ETA = (total - done) x elapsed / (done - done_at_start)    (seconds; mean time per unit so far)

(``done_at_start`` is where a resumed loop started). When ``stream`` (default stderr) is a terminal it also
draws a tqdm bar; inside Snakemake jobs stderr is usually a file or pipe, so the rule log carries the lines.

:class:`EpochProgress` is the training callback (``Trainer.run(progress=...)``): one line per epoch with
losses, effective coefficients, learning rate, criterion, seconds per epoch and the ETA to ``max_epochs``
(an upper bound: early stopping may end sooner).
"""

from __future__ import annotations

import logging
import math
import sys
import time


def format_duration(seconds: float | None) -> str:
    """``42 s``, ``3:07`` (m:ss) or ``2:03:07`` (h:mm:ss); ``?`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _format_values(values: dict) -> str:
    parts = []
    for key, value in values.items():
        if isinstance(value, float):
            parts.append(f"{key} {value:.4g}")
        else:
            parts.append(f"{key} {value}")
    return "  ".join(parts)


def _is_tty(stream) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # closed or not a file
        return False


class Progress:
    """``done`` of ``total`` units, reported to ``logger`` every ``every`` of the run (and a tqdm bar on a TTY).

    ``update(done, **values)`` returns the line it logged, or None; ``values`` (e.g. ``T=341.2``) are shown
    in the line and in the bar's postfix. ``clock`` is injectable for tests (seconds, monotonic).
    """

    def __init__(self, total: int, label: str, logger: logging.Logger | None = None, every: float = 0.1,
                 max_interval: float = 300.0, unit: str = "step", start: int = 0, stream=None, bar: bool | None = None,
                 clock=time.monotonic):
        if total <= 0:
            raise ValueError(f"progress total must be positive, got {total}")
        if not 0.0 < every <= 1.0:
            raise ValueError(f"progress every must be in (0, 1], got {every}")
        self.total, self.label, self.unit = int(total), label, unit
        self.logger = logger if logger is not None else logging.getLogger("balancebench.progress")
        self.every, self.max_interval, self.clock = float(every), float(max_interval), clock
        self.start_done = self.done = int(start)
        self.started = self.last_time = clock()
        self.last_done = self.start_done
        self.lines: list[str] = []
        stream = sys.stderr if stream is None else stream
        self.bar = None
        if bar if bar is not None else _is_tty(stream):
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.done, desc=label, unit=unit, file=stream, leave=True,
                            dynamic_ncols=True)

    def eta(self, done: int | None = None) -> float | None:
        """Seconds left at ``done`` (default: the last update) from the mean time per unit so far."""
        done = self.done if done is None else done
        progressed = done - self.start_done
        if progressed <= 0:
            return None
        return (self.total - done) * (self.clock() - self.started) / progressed

    def update(self, done: int, **values) -> str | None:
        done = min(int(done), self.total)
        if self.bar is not None:
            self.bar.update(done - self.done)
            if values:
                self.bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in values.items()},
                                     refresh=False)
        stride, self.done = done - self.done, done
        now = self.clock()
        fraction = done / self.total
        # due when the next update (at the same stride) would leave more than `every` of the run unreported
        due = (done + stride - self.last_done > self.every * self.total + 1e-9
               or now - self.last_time >= self.max_interval or done >= self.total)
        if not due:
            return None
        self.last_done, self.last_time = done, now
        elapsed = now - self.started
        rate = (done - self.start_done) / elapsed if elapsed > 0 else float("nan")
        line = (f"{self.label}: {done}/{self.total} {self.unit}s ({100.0 * fraction:.0f} %)"
                + (f"  {_format_values(values)}" if values else "")
                + f"  {rate:.3g} {self.unit}s/s  elapsed {format_duration(elapsed)}"
                + f"  ETA {format_duration(self.eta(done))}")
        self.logger.info("%s", line)
        self.lines.append(line)
        return line

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class EpochProgress:
    """Training progress callback: a log line per epoch (``row`` from ``Trainer.run``), ETA to max_epochs.

    ``max_epochs`` comes from the row (key ``max_epochs``) or, if absent, from the constructor.
    """

    def __init__(self, logger: logging.Logger | None = None, max_epochs: int | None = None, label: str = "training",
                 stream=None, bar: bool | None = None, clock=time.monotonic):
        self.logger = logger if logger is not None else logging.getLogger("balancebench.progress")
        self.max_epochs, self.label = max_epochs, label
        self.stream, self.bar_wanted, self.clock = stream, bar, clock
        self.seconds: list[float] = []
        self.first_epoch: int | None = None
        self.bar = None
        self.lines: list[str] = []

    def eta(self, epoch: int, max_epochs: int) -> float:
        """Seconds left if training runs to ``max_epochs`` at the mean epoch time seen so far."""
        return (max_epochs - epoch) * (sum(self.seconds) / len(self.seconds)) if self.seconds else float("nan")

    def __call__(self, row: dict) -> str:
        max_epochs = int(row.get("max_epochs") or self.max_epochs or row["epoch"])
        epoch = int(row["epoch"])
        if self.first_epoch is None:
            self.first_epoch = epoch
            stream = sys.stderr if self.stream is None else self.stream
            if self.bar_wanted if self.bar_wanted is not None else _is_tty(stream):
                from tqdm import tqdm

                self.bar = tqdm(total=max_epochs, initial=epoch - 1, desc=self.label, unit="epoch", file=stream)
        self.seconds.append(float(row["seconds"]))
        eta = self.eta(epoch, max_epochs)
        coefficients = "  ".join(f"{k} {row[k]:.4g}" for k in sorted(row) if k.startswith("coef_"))
        losses = [k[len("train_"):] for k in row if k.startswith("train_")]  # the task's loss names, in order
        train = " ".join(f"{n} {row[f'train_{n}']:.4g}" for n in losses)
        val = " ".join(f"{n} {row[f'val_{n}']:.4g}" for n in losses if f"val_{n}" in row)
        line = (f"{self.label}: epoch {epoch}/{max_epochs} ({100.0 * epoch / max_epochs:.0f} %)  "
                f"train {train}  val {val}  {coefficients}  "
                f"lr {row['lr']:.3g}  criterion {row['criterion']:.4g}  "
                f"{row['seconds']:.2f} s/epoch  ETA {format_duration(eta)} (at most; early stopping may end sooner)")
        self.logger.info("%s", line)
        self.lines.append(line)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix({f"val_{n}": f"{row[f'val_{n}']:.3g}" for n in losses if f"val_{n}" in row},
                                 refresh=False)
            if epoch >= max_epochs:
                self.close()
        return line

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
