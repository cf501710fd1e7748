"""Run independent tasks serially in-process or on dask.distributed, results in task order.

:func:`map_tasks` is the one runner the embarrassingly parallel parts of the package share
(row blocks of :func:`verified_lora.reference.enclose_blocked`; it suits ``phase`` grid points and
audit targets the same way). Each task is ``func(shared, *args)``:

* **serial** (the default, ``workers=None`` and ``scheduler=None``): a plain loop in this process;
* **LocalCluster** (``workers=N``): ``N`` worker processes with one thread each, started for the
  call and closed after it;
* **existing cluster** (``scheduler="tcp://host:8786"``): a :class:`distributed.Client` connected
  to that scheduler; its workers must be able to ``import verified_lora`` (same version).

``shared`` (large read-only inputs) is sent to every worker once. The results come back as a list
in the order of ``tasks`` whatever order the workers finish in, so a caller that reduces them in
list order gets bit-identical results on every runner. dask is imported only on the distributed
paths (``pip install 'verified-lora[distributed]'``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .errors import InputError

__all__ = ["map_tasks", "check_runner", "describe_runner"]

Progress = Callable[[int, int], None]
"""``progress(done, total)``, called after each finished task (and once with ``done = 0``)."""


def check_runner(workers: Any = None, scheduler: Any = None) -> tuple[int | None, str | None]:
    """Validate ``workers`` / ``scheduler`` (at most one; ``workers`` a positive int)."""
    if workers is not None and scheduler is not None:
        raise InputError("workers", "either workers or scheduler, not both", f"workers={workers!r}, "
                         f"scheduler={scheduler!r}", "--workers starts a local cluster; --scheduler uses yours")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InputError("workers", "a positive int (worker processes)", repr(workers))
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise InputError("scheduler", "a scheduler address such as tcp://10.0.0.5:8786", repr(scheduler))
    return workers, scheduler


def describe_runner(workers: int | None = None, scheduler: str | None = None) -> str:
    """A short description of the runner, e.g. ``"serial"`` or ``"dask LocalCluster (2 workers)"``."""
    if scheduler is not None:
        return f"dask scheduler {scheduler}"
    if workers is not None:
        return f"dask LocalCluster ({workers} worker{'s' if workers != 1 else ''})"
    return "serial"


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError("workers/scheduler", "dask.distributed installed", "it is not importable",
                         "pip install 'verified-lora[distributed]', or run serially (no --workers)") from exc
    return distributed


def map_tasks(func: Callable[..., Any], tasks: Sequence[tuple], shared: Any = None, *,
              workers: int | None = None, scheduler: str | None = None,
              progress: Progress | None = None, timings: dict[str, float] | None = None) -> list[Any]:
    """``[func(shared, *args) for args in tasks]``, serially or on dask.distributed.

    Parameters
    ----------
    func:
        A module-level function (workers import it by name).
    tasks:
        One argument tuple per task.
    shared:
        Passed as the first argument of every call; scattered to the workers once.
    workers, scheduler:
        ``None``/``None``: serial in this process. ``workers=N``: a fresh LocalCluster of ``N``
        single-threaded worker processes. ``scheduler=ADDRESS``: an existing cluster.
    progress:
        Optional ``progress(done, total)`` callback.
    timings:
        Optional dict; receives ``"startup_s"`` (cluster start and connection, 0 when serial) and
        ``"tasks_s"`` (from the first submission to the last result).

    Returns the results in the order of ``tasks``. An exception in a task is re-raised here.
    """
    workers, scheduler = check_runner(workers, scheduler)
    tasks = [tuple(t) for t in tasks]
    total = len(tasks)
    if progress is not None:
        progress(0, total)
    import time

    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    if workers is None and scheduler is None:
        timings["startup_s"] = 0.0
        out = []
        for k, args in enumerate(tasks):
            out.append(func(shared, *args))
            if progress is not None:
                progress(k + 1, total)
        timings["tasks_s"] = time.perf_counter() - t0
        return out
    distributed = _import_distributed()
    import logging

    cluster = None
    if scheduler is not None:
        client = distributed.Client(scheduler)
    else:
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=":0", silence_logs=logging.ERROR)
        client = distributed.Client(cluster)
    try:
        t1 = time.perf_counter()
        timings["startup_s"] = t1 - t0
        remote = client.scatter(shared, broadcast=True) if shared is not None else None
        futures = [client.submit(func, remote, *args, pure=False) for args in tasks]
        done = 0
        for _ in distributed.as_completed(futures):
            done += 1
            if progress is not None:
                progress(done, total)
        results = client.gather(futures)
        timings["tasks_s"] = time.perf_counter() - t1
        return results
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
