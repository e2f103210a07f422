"""Loading and saving models without transformers' progress bars (they clutter server logs and test output)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def no_progress_bars() -> Iterator[None]:
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()
