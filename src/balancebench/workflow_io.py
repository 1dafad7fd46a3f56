"""Glue for the thin Snakemake rule scripts: logging, provenance-stamped JSON, failure reporting.

A rule script does::

    with snakemake_job(snakemake) as job:
        result = library_call(...)
        job.write_json(snakemake.output.summary, result)

Python logging goes to the rule's ``log`` (named ``script`` if the rule has
several logs); an exception is logged with its traceback and re-raised, so the
job fails and Snakemake reports it, while other jobs go on (``--keep-going``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path

from balancebench.fileio import atomic_write_text
from balancebench.provenance import json_default, provenance


class Job:
    def __init__(self, smk):
        self.smk = smk
        self.config = dict(getattr(smk, "config", {}) or {})
        self.seed = self.config.get("seed")
        self.logger = logging.getLogger("balancebench.job")

    @property
    def task(self):
        """The run's task (config ``task``; its ``task_modules`` imported first)."""
        from balancebench.config import load_task_modules
        from balancebench.tasks.base import get_task

        load_task_modules(self.config.get("task_modules") or [])
        return get_task(self.config.get("task", "cg_benzene"), self.config or None)

    @property
    def search_vocabulary(self):
        from balancebench.search.space import SearchVocabulary

        return SearchVocabulary.from_task(self.task)

    def provenance(self, **extra) -> dict:
        return provenance(self.config, self.seed, rule=getattr(self.smk, "rule", None), **extra)

    def write_json(self, path: str | Path, payload: dict, **extra) -> None:
        record = dict(payload)
        record["provenance"] = self.provenance(**extra)
        atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True, default=json_default) + "\n")


def _script_log(smk) -> str | None:
    logs = getattr(smk, "log", None)
    if not logs:
        return None
    if hasattr(logs, "script"):
        return logs.script
    return logs[0]


@contextlib.contextmanager
def snakemake_job(smk):
    log_path = _script_log(smk)
    handlers = [logging.FileHandler(log_path, mode="w")] if log_path else [logging.StreamHandler()]
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    job = Job(smk)
    job.logger.info("rule %s started", getattr(smk, "rule", "?"))
    start = time.perf_counter()
    try:
        yield job
    except BaseException:
        job.logger.exception("rule %s failed", getattr(smk, "rule", "?"))
        raise
    finally:
        job.logger.info("rule %s finished after %.1f s", getattr(smk, "rule", "?"), time.perf_counter() - start)
        for h in handlers:
            h.flush()


def train_job_inputs(job: Job) -> tuple[dict, dict, object]:
    """(method params, training settings, the task's dataset) of a rule train job (one seed or all): the
    variant's configured settings with its search's selection applied for every seed, the selection said in
    the log."""
    from balancebench.search.space import variant_settings

    smk = job.smk
    params, training, selection = variant_settings(smk.input.get("selected"), smk.params.method,
                                                   smk.params.method_params, smk.params.training,
                                                   job.search_vocabulary)
    if selection:
        job.logger.info(selection)
    return params, training, job.task.read_dataset(smk.input.dataset)
