"""The project's own exception types; library errors are wrapped with the original as cause."""


class CustomerIdsError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(CustomerIdsError):
    """A setting is missing or wrong; the message names it and what is allowed."""


class DecodeError(CustomerIdsError):
    """Bytes on a topic are not a record we can read. Such records go to the dead-letter topic."""


class ValidationError(CustomerIdsError):
    """A record decoded but breaks a rule (an empty id, a bad country code)."""


class FencedError(CustomerIdsError):
    """A newer instance with the same transactional.id took over; this one must stop."""


class TemporaryError(CustomerIdsError):
    """A dependency did not answer (a schema registry, say): no record is to blame; the batch
    is aborted and tried again after a pause."""


class UnavailableError(CustomerIdsError):
    """A dependency (Kafka, Redis, the schema registry) did not answer within the command's
    bound; the message names it, its address and what to do. Exit EX_UNAVAILABLE (69)."""


def reason_of(exc: BaseException, limit: int = 300) -> str:
    """What went wrong, for a dead letter's header or a log line: the error's type and its
    message, never its repr (a UnicodeDecodeError's repr holds the raw bytes it failed on,
    which may be an email or a name)."""
    if isinstance(exc, UnicodeDecodeError):
        text = f"{exc.encoding} cannot decode byte {exc.start}: {exc.reason}"
    else:
        text = str(exc)
    return f"{type(exc).__name__}: {text}"[:limit]
