"""structlog, configured once at the entrypoint: console on a TTY, JSON lines otherwise."""

from __future__ import annotations

import logging
import re
import sys
import time

import structlog


def configure_logging(log_format: str = "auto", level: str = "info") -> None:
    """Route structlog and the stdlib (librdkafka's logger included) through one renderer."""
    use_console = log_format == "console" or (log_format == "auto" and sys.stderr.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if use_console:
        renderer = structlog.dev.ConsoleRenderer(colors=True)
    else:
        shared.append(structlog.processors.dict_tracebacks)
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)


# librdkafka's own variation between repeats of one complaint: how long it took, and its count
# of the repeats it already folded.
_VARYING = re.compile(r" \(after \d+ms in state \w+(, \d+ identical error\(s\) suppressed)?\)")
REPEAT_INTERVAL_S = 60.0


class RepeatSummary(logging.Filter):
    """librdkafka says an unreachable broker is unreachable every second, per client: the first
    line goes through, repeats within `interval_s` are counted, and the next one after it says
    how many there were."""

    def __init__(self, interval_s: float = REPEAT_INTERVAL_S) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._since: dict[str, tuple[float, int]] = {}  # line -> shown at, repeats since

    def filter(self, record: logging.LogRecord) -> bool:
        key = _VARYING.sub("", record.getMessage())
        now = time.monotonic()
        shown, repeats = self._since.get(key, (0.0, 0))
        if shown and now - shown < self.interval_s:
            self._since[key] = (shown, repeats + 1)
            return False
        if repeats:
            record.msg = f"{key} (and {repeats} more like it in the last {now - shown:.0f}s)"
            record.args = ()
        if len(self._since) > 1000:  # a bounded memory of lines
            self._since.clear()
        self._since[key] = (now, 0)
        return True


def kafka_logger() -> logging.Logger:
    """The stdlib logger handed to confluent-kafka, so librdkafka's lines share our format, a
    complaint repeated every second told once a minute."""
    logger = logging.getLogger("librdkafka")
    if not any(isinstance(f, RepeatSummary) for f in logger.filters):
        logger.addFilter(RepeatSummary())
    return logger
