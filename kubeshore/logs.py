"""Structured logs for every kubeshore process: one setup, one level flag, text or JSON lines.

Fields passed with ``extra=`` become part of the record, so a log line stays machine-readable::

    log.info("node connected", extra={"node": "edge-1", "remote": "10.0.0.7:51234"})

text (default on a terminal)::

    2026-11-22T01:02:03.456Z info  cloudcore.cloudhub node connected node=edge-1 remote=10.0.0.7:51234

json (default when stderr is not a terminal, e.g. under systemd or in a container)::

    {"ts": "2026-11-22T01:02:03.456Z", "level": "info", "logger": "cloudcore.cloudhub",
     "msg": "node connected", "node": "edge-1", "remote": "10.0.0.7:51234"}
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any, TextIO

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is a field.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


def _level(record: logging.LogRecord) -> str:
    return "warning" if record.levelname == "WARNING" else record.levelname.lower()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": _level(record),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_fields(record))
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {_level(record):<5} {record.name} {record.getMessage()}"
        for key, value in _fields(record).items():
            text = str(value)
            line += f" {key}={json.dumps(text) if (' ' in text or not text) else text}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def add_logging_flags(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` and ``--log-format``; defaults come from KUBESHORE_LOG_LEVEL / KUBESHORE_LOG_FORMAT."""
    parser.add_argument(
        "--log-level",
        choices=LEVELS,
        type=str.lower,  # INFO and WARNING, as older command lines spell them, still work
        default=os.environ.get("KUBESHORE_LOG_LEVEL", "info").lower(),
        help="least severe level logged (default info)",
    )
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        type=str.lower,
        default=os.environ.get("KUBESHORE_LOG_FORMAT"),
        help="text or json lines (default: text on a terminal, json otherwise)",
    )


def setup_logging(level: str = "info", fmt: str | None = None, stream: TextIO | None = None) -> None:
    """Configure the root logger once for the process (replacing handlers set before)."""
    if level not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    stream = stream or sys.stderr
    if fmt is None:
        fmt = "text" if stream.isatty() else "json"
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries that are chatty at info would drown the platform's own lines.
    # kubernetes' and urllib3's debug lines may carry request and response bodies (Secrets): never.
    for noisy in ("websockets", "aiohttp.access", "grpc", "asyncio", "kubernetes", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def setup_from_args(args: argparse.Namespace) -> None:
    setup_logging(args.log_level, args.log_format)


class Throttled:
    """One logger's repeated lines, at most one per ``interval`` seconds per key.

    Peers can send the same bad input thousands of times a second; a line per message would fill
    the disk and bury everything else. The first line of a key is logged at once, the repeats within
    the interval are counted, and the next line logged for the key says how many were left out
    (field ``suppressed``). Keys are the caller's (a reason class, a peer), at most ``max_keys`` kept.
    """

    def __init__(self, logger: logging.Logger, interval: float = 60.0, max_keys: int = 1024) -> None:
        self.logger = logger
        self.interval = interval
        self.max_keys = max_keys
        self._last: dict[str, tuple[float, int]] = {}  # key -> (monotonic time logged, suppressed since)

    def log(self, level: int, key: str, msg: str, *args: object, **fields: Any) -> bool:
        """Log ``msg % args`` with ``fields``, unless ``key`` was logged within the interval (False)."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval:
            self._last[key] = (last[0], last[1] + 1)
            return False
        if last is None and len(self._last) >= self.max_keys:
            # Forget the keys logged longest ago, so a stream of new keys cannot grow this map.
            for old in sorted(self._last, key=lambda k: self._last[k][0])[: self.max_keys // 2]:
                del self._last[old]
        suppressed = last[1] if last is not None else 0
        if suppressed:
            fields["suppressed"] = suppressed
        self._last[key] = (now, 0)
        self.logger.log(level, msg, *args, extra=fields or None)
        return True

    def warning(self, key: str, msg: str, *args: object, **fields: Any) -> bool:
        return self.log(logging.WARNING, key, msg, *args, **fields)

    def error(self, key: str, msg: str, *args: object, **fields: Any) -> bool:
        return self.log(logging.ERROR, key, msg, *args, **fields)
