"""The tidy metrics table: reading, validation, metric directions, failed runs.

Contract (docs/statistics.md): one row per (method, seed, metric) with columns
``method, seed, metric, value, status`` and optional ``direction`` (``lower``,
``higher`` or ``target``), ``target`` (a number, only with ``target``) and
``reason``. ``status`` is ``completed`` (the value is used), ``diverged``
(training failed), ``unstable`` (the CG simulation blew up), ``missing`` (an
input was absent) or ``invalid`` (the metric is undefined on the data); any
status but ``completed`` excludes that row from its metric's tests. A run
(method, seed) *failed* when any of its rows says ``diverged`` or ``unstable``. ``censored``
marks a measured value that is only a lower bound (N_ep of a run stopped by max_epochs):
it is used, with the handling of docs/statistics.md.

Nothing here turns bad input into NaN: a value that is not a number, a completed
row without a finite value, a duplicate row or a method with a single seed is an
error that names the line and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

REQUIRED_COLUMNS = ("method", "seed", "metric", "value", "status")
OPTIONAL_COLUMNS = ("direction", "target", "reason")
COMPLETED = "completed"
CENSORED = "censored"  # a value that is only a lower bound (N_ep of a run stopped by max_epochs)
MEASURED = (COMPLETED, CENSORED)
RUN_FAILURES = ("diverged", "unstable")
STATUSES = (COMPLETED, CENSORED, *RUN_FAILURES, "missing", "invalid")
DIRECTIONS = ("lower", "higher", "target")
_MAX_LISTED = 10


class MetricsTableError(ValueError):
    """The metrics table is malformed; the message says which column, line or value."""


@dataclass(frozen=True)
class Direction:
    """Which value of a metric is better.

    ``lower``: smaller x is better; ``higher``: larger x is better; ``target``:
    x closest to ``target`` is better, and the tests compare the deviation
    d = |x - target| (lower is better), never x itself.
    """

    kind: str = "lower"
    target: float | None = None

    def __post_init__(self):
        if self.kind not in DIRECTIONS:
            raise MetricsTableError(f"direction {self.kind!r} is not one of {', '.join(DIRECTIONS)}")
        if self.kind == "target" and (self.target is None or not np.isfinite(self.target)):
            raise MetricsTableError("direction 'target' needs a finite target value (e.g. target:340)")
        if self.kind != "target" and self.target is not None:
            raise MetricsTableError(f"a target value is only meaningful with direction 'target', not {self.kind!r}")

    def tested(self, values: np.ndarray) -> np.ndarray:
        """The quantity the tests compare: x, or |x - target| for direction ``target``."""
        values = np.asarray(values, dtype=float)
        return np.abs(values - self.target) if self.kind == "target" else values

    @property
    def higher_is_better(self) -> bool:
        """True only for ``higher``; for ``target`` the tested deviation is lower-is-better."""
        return self.kind == "higher"

    @property
    def tested_label(self) -> str:
        return f"|x - {self.target:g}|" if self.kind == "target" else "x"

    def describe(self) -> str:
        if self.kind == "target":
            return f"closest to {self.target:g}"
        return f"{self.kind} is better"

    def spec(self) -> str:
        return f"target:{self.target:g}" if self.kind == "target" else self.kind


def _run_reason(reasons) -> str:
    """One run's reason from its metrics' reasons: distinct ones, dropping any that a longer one contains."""
    unique = sorted({str(r) for r in reasons if isinstance(r, str) and r})
    return "; ".join(r for r in unique if not any(r != other and r in other for other in unique))


def parse_direction(spec: str) -> tuple[str, Direction]:
    """Parse ``METRIC=lower|higher|target:VALUE`` (the CLI's ``--direction``)."""
    metric, sep, rhs = spec.partition("=")
    metric, rhs = metric.strip(), rhs.strip()
    if not sep or not metric or not rhs:
        raise MetricsTableError(f"--direction {spec!r}: expected METRIC=lower, METRIC=higher or METRIC=target:VALUE")
    kind, _, target = rhs.partition(":")
    if kind == "target":
        try:
            value = float(target)
        except ValueError:
            raise MetricsTableError(f"--direction {spec!r}: target {target!r} is not a number") from None
        return metric, Direction("target", value)
    if target:
        raise MetricsTableError(f"--direction {spec!r}: only 'target' takes a value after ':'")
    return metric, Direction(kind)


def direction_from_config(entry: dict) -> Direction:
    """A Direction from a config entry ``{direction: target, target: 340}``."""
    return Direction(entry["direction"], None if entry.get("target") is None else float(entry["target"]))


@dataclass
class MetricsTable:
    """A validated metrics table.

    ``data`` has one row per (method, seed, metric): ``value`` is a float (NaN
    only where the status is not completed), ``excluded`` is True when the
    status is not ``completed`` (the row takes no part in the tests).
    ``runs`` has one row per (method, seed) with the run's status (its first
    ``diverged``/``unstable`` status, else ``completed``), reasons and ``failed``.
    ``methods`` and ``metrics`` keep the order of first appearance.
    """

    data: pd.DataFrame
    methods: tuple[str, ...]
    metrics: tuple[str, ...]
    directions: dict[str, Direction]
    defaulted: tuple[str, ...] = ()
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)

    def failed_runs(self) -> pd.DataFrame:
        """One row per failed run: method, seed, status, reason."""
        return self.runs[self.runs["failed"]].reset_index(drop=True)

    def excluded_rows(self) -> pd.DataFrame:
        """Every row kept out of the tests (status not completed): method, seed, metric, status, reason."""
        rows = self.data[self.data["excluded"]]
        return rows[["method", "seed", "metric", "status", "reason"]].reset_index(drop=True)


def _lines(mask: pd.Series) -> list[int]:
    """CSV line numbers (header = line 1) of the rows selected by ``mask``."""
    return [int(i) + 2 for i in np.flatnonzero(mask.to_numpy())]


def _row_label(row: pd.Series, line: int) -> str:
    return f"line {line} (method={row['method']}, seed={row['seed']}, metric={row['metric']})"


def _listed(items: list[str]) -> str:
    more = len(items) - _MAX_LISTED
    return "; ".join(items[:_MAX_LISTED]) + (f"; ... and {more} more" if more > 0 else "")


def read_metrics_csv(path: str | Path) -> pd.DataFrame:
    """Read a tidy metrics CSV as strings (validation converts, so errors can quote the raw text)."""
    path = Path(path)
    if not path.exists():
        raise MetricsTableError(f"{path}: no such file")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise MetricsTableError(f"{path}: the file is empty (expected a header: {', '.join(REQUIRED_COLUMNS)})") from None
    except pd.errors.ParserError as err:
        raise MetricsTableError(f"{path}: not a valid CSV file ({err})") from None


def load_metrics_table(path: str | Path, directions: dict[str, Direction] | None = None) -> MetricsTable:
    """Read and validate a tidy metrics CSV (see :func:`validate_metrics_table`)."""
    return validate_metrics_table(read_metrics_csv(path), directions=directions, source=str(path))


def validate_metrics_table(frame: pd.DataFrame, directions: dict[str, Direction] | None = None,
                           source: str = "metrics table") -> MetricsTable:
    """Check a tidy table and resolve each metric's direction.

    Direction precedence: ``directions`` (config or CLI) > the table's
    ``direction``/``target`` columns > the default ``lower`` (listed in
    ``MetricsTable.defaulted`` so callers can say which defaults were assumed).
    """
    frame = frame.copy()
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise MetricsTableError(f"{source}: missing required column(s): {', '.join(missing)} "
                                f"(found: {', '.join(frame.columns) or 'none'}; required: {', '.join(REQUIRED_COLUMNS)})")
    if frame.empty:
        raise MetricsTableError(f"{source}: the table has a header but no rows")
    for col in frame.columns:
        frame[col] = frame[col].astype(str).str.strip()

    for col in ("method", "seed", "metric"):
        empty = frame[col] == ""
        if empty.any():
            raise MetricsTableError(f"{source}: empty {col} on line(s) {_lines(empty)[:_MAX_LISTED]}")

    bad_status = ~frame["status"].isin(STATUSES)
    if bad_status.any():
        items = [f"{_row_label(frame.iloc[i - 2], i)}: status {frame['status'].iloc[i - 2]!r}" for i in _lines(bad_status)]
        raise MetricsTableError(f"{source}: status must be one of {', '.join(STATUSES)}: {_listed(items)}")

    numeric = pd.to_numeric(frame["value"].where(frame["value"] != ""), errors="coerce")
    not_a_number = (frame["value"] != "") & numeric.isna() & ~frame["value"].str.lower().isin(["nan"])
    if not_a_number.any():
        items = [f"{_row_label(frame.iloc[i - 2], i)}: value {frame['value'].iloc[i - 2]!r}" for i in _lines(not_a_number)]
        raise MetricsTableError(f"{source}: non-numeric value(s): {_listed(items)}")
    values = numeric.astype(float)
    completed = frame["status"].isin(MEASURED)
    no_value = completed & ~np.isfinite(values.fillna(np.nan).to_numpy())
    if no_value.any():
        items = [f"{_row_label(frame.iloc[i - 2], i)}: value {frame['value'].iloc[i - 2]!r}" for i in _lines(no_value)]
        raise MetricsTableError(
            f"{source}: completed row(s) without a finite value (a failed value must say its status: "
            f"{', '.join(STATUSES[2:])}; never a completed NaN): {_listed(items)}")

    duplicated = frame.duplicated(["method", "seed", "metric"], keep=False)
    if duplicated.any():
        items = [_row_label(frame.iloc[i - 2], i) for i in _lines(duplicated)]
        raise MetricsTableError(f"{source}: duplicate (method, seed, metric) rows: {_listed(items)}")

    methods = tuple(pd.unique(frame["method"]))
    metrics = tuple(pd.unique(frame["metric"]))
    if len(methods) < 2:
        raise MetricsTableError(f"{source}: only one method ({methods[0]}); the scheme compares at least two methods")
    seeds = frame.groupby("method", sort=False)["seed"].unique()
    single = [f"{m} (seed {seeds[m][0]})" for m in methods if len(seeds[m]) < 2]
    if single:
        raise MetricsTableError(
            f"{source}: only one seed for method(s) {', '.join(single)}: the scheme compares populations of "
            f"runs, so every method needs at least 2 seeds (runs with different seeds)")

    resolved, defaulted = _resolve_directions(frame, metrics, directions or {}, source)

    data = pd.DataFrame({
        "method": frame["method"], "seed": frame["seed"], "metric": frame["metric"],
        "value": values.to_numpy(), "status": frame["status"],
        "reason": frame["reason"] if "reason" in frame.columns else "",
    })
    runs = (data.groupby(["method", "seed"], sort=False)
            .agg(status=("status", lambda s: next((x for x in s if x in RUN_FAILURES), COMPLETED)),
                 reason=("reason", _run_reason))
            .reset_index())
    runs["failed"] = runs["status"] != COMPLETED
    data["excluded"] = ~data["status"].isin(MEASURED)
    return MetricsTable(data=data, methods=methods, metrics=metrics, directions=resolved,
                        defaulted=tuple(defaulted), runs=runs)


def _resolve_directions(frame: pd.DataFrame, metrics: tuple[str, ...], overrides: dict[str, Direction],
                        source: str) -> tuple[dict[str, Direction], list[str]]:
    unknown = sorted(set(overrides) - set(metrics))
    if unknown:
        raise MetricsTableError(f"direction given for metric(s) not in the table: {', '.join(unknown)} "
                                f"(metrics in {source}: {', '.join(metrics)})")
    has_direction = "direction" in frame.columns
    has_target = "target" in frame.columns
    resolved: dict[str, Direction] = {}
    defaulted: list[str] = []
    for metric in metrics:
        if metric in overrides:
            resolved[metric] = overrides[metric]
            continue
        rows = frame[frame["metric"] == metric]
        kinds = sorted(set(rows["direction"]) - {""}) if has_direction else []
        if len(kinds) > 1:
            raise MetricsTableError(f"{source}: metric {metric!r} has conflicting directions {kinds}")
        if not kinds:
            resolved[metric] = Direction("lower")
            defaulted.append(metric)
            continue
        kind = kinds[0]
        if kind not in DIRECTIONS:
            raise MetricsTableError(f"{source}: metric {metric!r} has direction {kind!r}, not one of {', '.join(DIRECTIONS)}")
        target = None
        if kind == "target":
            texts = sorted(set(rows["target"]) - {""}) if has_target else []
            numbers = pd.to_numeric(pd.Series(texts, dtype=str), errors="coerce")
            if not texts:
                raise MetricsTableError(f"{source}: metric {metric!r} has direction 'target' but no target value "
                                        f"(add a target column or pass --direction {metric}=target:VALUE)")
            if numbers.isna().any():
                raise MetricsTableError(f"{source}: metric {metric!r} has a non-numeric target {texts}")
            if numbers.nunique() > 1:
                raise MetricsTableError(f"{source}: metric {metric!r} has conflicting targets {texts}")
            target = float(numbers.iloc[0])
        resolved[metric] = Direction(kind, target)
    return resolved, defaulted
