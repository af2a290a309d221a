"""A Ctrl-C that lands in a garbage-collector callback is swallowed by Python; check() raises it again."""
import gc
import os
import signal
import sys
import weakref

import pytest

from colonsim.run import interrupt


class _Thing:
    pass


def test_an_interrupt_swallowed_by_a_weakref_callback_is_raised_by_check():
    old, old_hook = signal.getsignal(signal.SIGINT), sys.unraisablehook
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        interrupt.install()
        assert not interrupted_now()
        seen = []

        def callback(_):
            seen.append(True)
            os.kill(os.getpid(), signal.SIGINT)   # the handler runs here, inside the callback
            for _ in range(1000):                 # a few bytecodes, so that it raises in here
                pass

        thing = _Thing()
        ref = weakref.ref(thing, callback)  # noqa: F841
        del thing                            # the callback runs; Python prints and drops the error
        gc.collect()
        assert seen == [True]
        assert interrupt.interrupted()
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
    finally:
        signal.signal(signal.SIGINT, old)
        sys.unraisablehook = old_hook


def test_install_keeps_an_ignored_sigint_ignored():
    old = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        interrupt.install()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        interrupt.check()   # nothing arrived: no exception
    finally:
        signal.signal(signal.SIGINT, old)


def interrupted_now() -> bool:
    return interrupt.interrupted()
