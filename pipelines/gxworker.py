"""The process Great Expectations runs in while ingest goes on staging.

GX is pure Python and holds the GIL for nearly all of its time; on a thread beside the
staging (Arrow and Parquet work that releases the GIL only part of the time) the two
took turns rather than sharing two cores. Here GX runs in one worker process, started
with ``spawn`` (never ``fork``: the parent runs Arrow's and DuckDB's thread pools), so
it has a core of its own. The worker is handed paths of staged Parquet partitions and
small hourly tables, never a large frame, and it reads the partitions back itself.

The worker stays up for the life of the parent process, so that GX is imported (several
seconds) once per process, as it was on the thread: a CLI run or an Airflow task pays
for it once, a test session once. Its log records are forwarded to the parent's loggers,
so they reach the same handlers (the console, Airflow's task log) as before.

Where a worker process cannot be started (a daemonic process may not have children), GX
runs on a thread of the parent instead, as it did before the worker existed.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import multiprocessing
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_executor: Executor | None = None
_listener: logging.handlers.QueueListener | None = None


class _ToOwnLogger(logging.Handler):
    """Hands a record from the worker to the parent's logger of the same name."""

    def emit(self, record: logging.LogRecord) -> None:
        own = logging.getLogger(record.name)
        if own.isEnabledFor(record.levelno):
            own.handle(record)


def _start_worker_logging(queue: Any) -> None:
    """Worker initializer: every record goes to the parent through ``queue``."""
    logging.getLogger().handlers[:] = [logging.handlers.QueueHandler(queue)]


def executor() -> Executor:
    """The shared validation executor: one worker process (or, failing that, one thread)."""
    global _executor, _listener
    with _lock:
        if _executor is not None:
            return _executor
        if multiprocessing.current_process().daemon:
            logger.info("validating on a thread: a daemonic process cannot start a worker")
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="validate")
            return _executor
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        _listener = logging.handlers.QueueListener(queue, _ToOwnLogger())
        _listener.start()
        _executor = ProcessPoolExecutor(max_workers=1, mp_context=context,
                                        initializer=_start_worker_logging, initargs=(queue,))
        return _executor


FORWARDED_LOGGERS = ("", "pipelines", "great_expectations")
"""Loggers whose level the worker copies from the parent at each call (root first)."""


def submit(function: Any, *args: Any) -> Future:
    """Run ``function(*args)`` on the worker with the parent's current log levels.

    ``function`` must be importable by name (it is pickled); so must ``args``.
    """
    levels = {name: logging.getLogger(name).getEffectiveLevel() for name in FORWARDED_LOGGERS}
    try:
        return executor().submit(_with_levels, levels, function, *args)
    except BrokenProcessPool:
        forget_broken()
        return executor().submit(_with_levels, levels, function, *args)


def forget_broken() -> None:
    """Drop a worker that died (e.g. killed for memory), so the next call starts anew."""
    global _executor
    with _lock:
        broken, _executor = _executor, None
    if broken is not None:
        broken.shutdown(wait=False, cancel_futures=True)


def _with_levels(levels: dict[str, int], function: Any, *args: Any) -> Any:
    if threading.current_thread() is not threading.main_thread():
        return function(*args)  # the thread fallback shares the parent's loggers
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    return function(*args)


@atexit.register
def shutdown() -> None:
    """Stop the worker and the log forwarding (at exit, or when a caller is done with GX)."""
    global _executor, _listener
    with _lock:
        running, _executor = _executor, None
        listening, _listener = _listener, None
    if running is not None:
        running.shutdown(wait=True, cancel_futures=True)
    if listening is not None:
        listening.stop()
