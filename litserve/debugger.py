"""``ls.set_trace()``: pdb that works inside a worker process, driven from the terminal the server runs in.

A worker's ``sys.stdin`` is ``/dev/null`` (multiprocessing closes it), so plain ``breakpoint()`` there quits at
once. This debugger reads its commands from the process's file descriptor 0 instead: the terminal (or pipe)
the server was started with, which every worker inherits. litserve's workers run in a process group of their
own, and a terminal stops a background group that reads from it; while the debugger waits for commands, its
group is the terminal's foreground group, and the server's group gets the terminal back afterwards.
"""

from __future__ import annotations

import contextlib
import os
import pdb
import signal
import sys
import threading
from types import FrameType
from typing import Any, Iterator, Optional, TextIO

_STDIN_FD = 0
_reader: Optional[TextIO] = None  # one per process, so input read ahead (a pipe) is kept between stops
_reader_lock = threading.Lock()


def _terminal_reader() -> TextIO:
    """A text reader over this process's fd 0, opened once."""
    global _reader
    with _reader_lock:
        if _reader is None:
            try:
                descriptor = os.dup(_STDIN_FD)
            except OSError:
                raise RuntimeError("set_trace() reads the server's standard input, and it is closed") from None
            _reader = os.fdopen(descriptor, "r", encoding="utf-8", errors="replace")
        return _reader


def _server_group_in_foreground(fd: int) -> Optional[int]:
    """The terminal's foreground group when it is the server's (this process's parent's) and not ours."""
    try:
        owner = os.tcgetpgrp(fd) if os.isatty(fd) else None
        parent_group = os.getpgid(os.getppid())
    except OSError:
        return None
    if owner is None or owner == os.getpgrp() or owner != parent_group:
        return None  # ours already, or the server itself runs in the background: leave the terminal alone
    return owner


@contextlib.contextmanager
def _terminal_foreground(fd: int) -> Iterator[None]:
    """While the server holds terminal ``fd``'s foreground, lend it to this process's group for the block."""
    owner = _server_group_in_foreground(fd)
    if owner is None:
        yield
        return
    mine = os.getpgrp()
    # A background group that changes the foreground group gets SIGTTOU unless it blocks the signal.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
    try:
        os.tcsetpgrp(fd, mine)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):  # the server's group may be gone meanwhile
                os.tcsetpgrp(fd, owner)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


class ForkedPdb(pdb.Pdb):
    """pdb for a child process (LitServe's name): each stop reads commands from fd 0, not ``sys.stdin``."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("nosigint", True)  # keep the worker's own SIGINT handling
        super().__init__(stdin=_terminal_reader(), **kwargs)
        self.use_rawinput = False  # read self.stdin; ``input()`` would read the worker's /dev/null

    def interaction(self, frame: Optional[FrameType], traceback: Any) -> None:
        saved = sys.stdin
        sys.stdin = self.stdin  # for commands that read it themselves (``interact``)
        try:
            with _terminal_foreground(_STDIN_FD):
                super().interaction(frame, traceback)
        finally:
            sys.stdin = saved


def set_trace(frame: FrameType) -> None:
    """Stop in the debugger at ``frame``'s next line (``litserve.utils.set_trace`` passes its caller's)."""
    ForkedPdb().set_trace(frame)
