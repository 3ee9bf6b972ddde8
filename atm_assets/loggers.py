"""A console logger in the original script's format, used by the controller."""

import logging
import sys

from dagster import Field, InitLoggerContext, logger

_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"
_FAILURES = ("STEP_FAILURE", "RUN_FAILURE")


class _OriginalFormat(logging.Formatter):
    """`2024-12-17 20:30:00 - INFO - Saved batch of 100 stocks`: the user's message only; with
    `verbose`, failures too, with their full error and traceback."""

    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        message = meta.get("orig_message", record.getMessage())
        if event is not None:
            error = getattr(getattr(event, "event_specific_data", None), "error", None)
            if error is not None:
                message = f"{message}\n{error.to_string()}"
        record = logging.makeLogRecord({**record.__dict__, "msg": message, "args": ()})
        return super().format(record)


class _UserMessages(logging.Filter):
    """Messages ATM logs; Dagster's own engine events stay out of this stream. Failures show
    only when verbose: the controller prints the error itself, as one line."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            return True
        return self.verbose and event.event_type_value in _FAILURES


@logger(
    {
        "log_level": Field(str, is_required=False, default_value="CRITICAL"),
        "verbose": Field(bool, is_required=False, default_value=False),
    },
    description="Original-script log lines (off unless log_level is set, e.g. by the controller)",
)
def atm_console_logger(init_context: InitLoggerContext) -> logging.Logger:
    config = init_context.logger_config
    log = logging.Logger("atm", level=config["log_level"])
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_OriginalFormat(_FORMAT, "%Y-%m-%d %H:%M:%S"))
    handler.addFilter(_UserMessages(config["verbose"]))
    log.addHandler(handler)
    return log
