"""Ctrl-C that cannot be lost.

Python turns SIGINT into a KeyboardInterrupt raised in whatever Python code the main thread runs
next. When that code is a weakref callback or a ``__del__`` run by the garbage collector, the
interpreter prints the exception and swallows it, and a long run goes on as if the key had never
been pressed (seen about once in ten interrupts of ``colonsim render``). :func:`install` keeps a
flag as well, and the long loops call :func:`check`, which raises again; the traceback Python would
print for the swallowed one is left out, so that an interrupt stays one line on stderr.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from typing import Callable

_interrupted = False


def _handler(signum, frame) -> None:
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def _unraisable(u) -> None:
    if issubclass(u.exc_type, KeyboardInterrupt) and _interrupted:
        return   # the flag holds it: check() raises it where it can be handled
    _default_unraisable(u)


_default_unraisable = sys.unraisablehook


def install() -> None:
    """Handle SIGINT with the flag (main thread only; elsewhere the default handling stays)."""
    global _interrupted
    _interrupted = False
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _handler)
        sys.unraisablehook = _unraisable


def watch(grace_s: float, on_stuck: Callable[[], None]) -> None:
    """Call ``on_stuck()`` from a background thread if this process is still running ``grace_s``
    seconds after a SIGINT. The main thread handles a Ctrl-C only between Python bytecodes, so a
    long call into C (a mesh routine, a GL draw) can delay it for seconds; the CLI's ``on_stuck``
    ends the process instead (a render's files are resumable after a kill at any moment). The
    thread hears the signal at once, through the interpreter's wakeup file descriptor. Main thread
    only, after :func:`install`; elsewhere it does nothing."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not _handler:
        return
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except ValueError:
        os.close(r)
        os.close(w)
        return

    def run() -> None:
        while True:
            try:
                data = os.read(r, 64)
            except OSError:
                return
            if not data:
                return
            if signal.SIGINT in data:
                time.sleep(grace_s)
                on_stuck()
                return
    threading.Thread(target=run, name="colonsim-interrupt-watch", daemon=True).start()


def interrupted() -> bool:
    return _interrupted


def check() -> None:
    """Raise KeyboardInterrupt if SIGINT arrived since :func:`install` (its first one may have been
    swallowed)."""
    if _interrupted:
        raise KeyboardInterrupt


@contextlib.contextmanager
def children_ignore_sigint():
    """Spawn processes that ignore SIGINT (the disposition passes through exec; the signal mask
    does not). A SIGINT meanwhile stays pending for this process and arrives afterwards."""
    main = threading.current_thread() is threading.main_thread()
    if not main:
        yield
        return
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    old_handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def stop_pool(pool) -> None:
    """End the worker processes of a ``concurrent.futures.ProcessPoolExecutor`` now (SIGTERM), not
    after their tasks, and shut it down without waiting: after a Ctrl-C, or bad input found while
    they work. (The executor has no public way to do this before Python 3.14's terminate_workers.)"""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            proc.terminate()
        except (OSError, ValueError, AttributeError):
            pass
    pool.shutdown(wait=False, cancel_futures=True)
