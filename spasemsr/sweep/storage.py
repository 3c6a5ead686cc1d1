"""Study storage by URL, and re-running the trials of workers that died.

- ``sqlite:///path.db`` (the default) or any SQLAlchemy URL (``postgresql+psycopg2://user@host/db``,
  for workers on many machines): Optuna's RDBStorage with heartbeats, so a trial whose worker stopped
  beating is failed and re-queued with the same knobs (``Requeue``).
- ``journal:path.log``: Optuna's JournalStorage (several processes on one machine, no database).
  It has no heartbeats; the pid check below covers it.
On start every worker also fails and re-queues the running trials of dead processes on its own host
(recorded in the trial's ``worker`` attribute), so a killed single-machine sweep resumes at once.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from sqlalchemy.exc import ArgumentError, DatabaseError, IntegrityError, NoSuchModuleError

from spasemsr.config.compose import ConfigError
from spasemsr.sweep.spec import Liveness

_SCHEMA_ATTEMPTS = 5


class Requeue:
    """Queue a failed trial again with the same knobs, at most ``max_retry`` times per original trial.

    Like Optuna's ``RetryHeartbeatStaleTrialCallback`` (same ``retry_history`` system attribute), but the
    dead worker's ``worker`` attribute is not copied, so the new trial is never mistaken for a dead one.
    """

    def __init__(self, max_retry: int) -> None:
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        history = [*trial.system_attrs.get("retry_history", []), trial.number]
        if len(history) > self.max_retry:
            return
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
            user_attrs={k: v for k, v in trial.user_attrs.items() if k != "worker"},
            system_attrs={"failed_trial": history[0], "retry_history": history},
        ))


def open_storage(url: str, liveness: Liveness) -> BaseStorage:
    """The storage a URL names; folders of local files are created."""
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    def connect() -> RDBStorage:
        return RDBStorage(url, heartbeat_interval=liveness.heartbeat_interval, grace_period=liveness.grace_period,
                          heartbeat_stale_trial_callback=Requeue(liveness.max_retry))

    try:
        for attempt in range(1, _SCHEMA_ATTEMPTS):
            try:
                return connect()
            except IntegrityError:  # workers creating the tables of a fresh database at once: one wins, retry
                time.sleep(0.5 * attempt)
        return connect()
    except ArgumentError as err:
        raise ConfigError(f"--storage {url!r} is not a storage URL ({err}); give sqlite:///path.db, "
                          "postgresql+psycopg2://user@host/db or journal:path.log") from None
    except (DatabaseError, NoSuchModuleError) as err:
        cause = getattr(err, "orig", None) or err
        raise ConfigError(f"--storage {url}: cannot open it as an Optuna study database ({cause}); check the URL "
                          "and the server, or move a damaged file away and start a new one") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def requeue_dead_local_trials(study: optuna.Study, liveness: Liveness) -> list[int]:
    """Fail the running trials of dead processes on this host and queue each again; returns their numbers."""
    host = socket.gethostname()
    requeue, dead = Requeue(liveness.max_retry), []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker") or {}
        if worker.get("host") == host and worker.get("pid") != os.getpid() and not _alive(int(worker["pid"])):
            try:  # (no public API for failing another process's trial)
                study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)  # noqa: SLF001
            except UpdateFinishedTrialError:  # another worker got there first
                continue
            requeue(study, study._storage.get_trial(trial._trial_id))  # noqa: SLF001
            dead.append(trial.number)
    return dead
