"""Ctrl-C that cannot be lost.

Python turns SIGINT into a KeyboardInterrupt raised in whatever Python code the main thread runs
next. When that code is a weakref callback or a ``__del__`` run by the garbage collector, the
interpreter prints the exception and swallows it, and a long run goes on as if the key had never
been pressed (seen about once in ten interrupts of ``colonsim render``). :func:`install` keeps a
flag as well, and the long loops call :func:`check`, which raises again; the traceback Python would
print for the swallowed one is left out, so that an interrupt stays one line on stderr.
"""
from __future__ import annotations

import signal
import sys
import threading

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


def interrupted() -> bool:
    return _interrupted


def check() -> None:
    """Raise KeyboardInterrupt if SIGINT arrived since :func:`install` (its first one may have been
    swallowed)."""
    if _interrupted:
        raise KeyboardInterrupt
