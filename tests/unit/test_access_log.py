"""``DirectAccessLog`` writes exactly uvicorn's access-log line, and only while uvicorn's logger is left as is."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import logging.config

from uvicorn.config import LOGGING_CONFIG

from litserve.access_log import DirectAccessLog, direct_access_log

ARGS = [
    ("127.0.0.1:50000", "POST", "/predict", "1.1", 200),
    ("[::1]:1", "GET", "/a%20b?x=1", "1.0", 404),
    ("10.0.0.1:9", "PUT", "/", "1.1", 599),  # no phrase
]


@contextlib.contextmanager
def uvicorn_access_logger():
    """``uvicorn.access`` as uvicorn configures it (no terminal: no colours), restored afterwards.

    Used inside each test: pytest adds its log-capturing handlers to the loggers as each test phase starts."""
    logger = logging.getLogger("uvicorn.access")
    saved = (logger.handlers[:], logger.level, logger.propagate, logger.filters[:], logger.disabled)
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["access"]["use_colors"] = False
    logging.config.dictConfig(config)
    logger.handlers[0].setStream(io.StringIO())
    try:
        yield logger
    finally:
        logger.handlers, logger.level, logger.propagate, logger.filters, logger.disabled = saved


def test_the_direct_line_is_the_one_uvicorns_logger_writes():
    with uvicorn_access_logger() as access_logger:
        check_direct_line(access_logger)


def check_direct_line(access_logger):
    direct = direct_access_log(access_logger)
    assert isinstance(direct, DirectAccessLog)
    stream = access_logger.handlers[0].stream
    for args in ARGS:
        access_logger.info('%s - "%s %s HTTP/%s" %d', *args)
        logged = stream.getvalue()
        stream.seek(0), stream.truncate()
        direct.info('%s - "%s %s HTTP/%s" %d', *args)
        assert stream.getvalue() == logged and logged.startswith("INFO:     ")
        stream.seek(0), stream.truncate()


def test_any_other_configuration_keeps_the_logger():
    with uvicorn_access_logger() as access_logger:
        check_other_configurations(access_logger)


def check_other_configurations(access_logger):
    handler = access_logger.handlers[0]
    handler.addFilter(lambda record: True)  # e.g. the API-key redaction
    assert direct_access_log(access_logger) is None
    handler.filters.clear()
    handler.formatter.use_colors = True
    assert direct_access_log(access_logger) is None
    handler.formatter.use_colors = False
    handler.setFormatter(logging.Formatter("%(message)s"))
    assert direct_access_log(access_logger) is None
    access_logger.setLevel(logging.WARNING)
    assert direct_access_log(access_logger) is None
    assert direct_access_log(logging.getLogger("uvicorn.error")) is None
