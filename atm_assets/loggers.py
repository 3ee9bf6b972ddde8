"""A console logger in the original script's format, used by the controller."""

import logging
import sys

from dagster import Field, InitLoggerContext, logger

_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"


class _OriginalFormat(logging.Formatter):
    """`2024-12-17 20:30:00 - INFO - Saved batch of 100 stocks`: the user's message only,
    plus failures with their error (Dagster's own engine events stay out of this stream)."""

    def format(self, record: logging.LogRecord) -> str:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        message = meta.get("orig_message", record.getMessage())
        if event is not None:
            error = getattr(event, "event_specific_data", None)
            error = getattr(error, "error", None)
            if error is not None:
                message = f"{message}: {error.cls_name}: {error.message.strip()}"
        record = logging.makeLogRecord({**record.__dict__, "msg": message, "args": ()})
        return super().format(record)


class _UserAndFailures(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        meta = getattr(record, "dagster_meta", None) or {}
        event = meta.get("dagster_event")
        if event is None:
            return True
        return event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE")


@logger(
    {"log_level": Field(str, is_required=False, default_value="CRITICAL")},
    description="Original-script log lines (off unless log_level is set, e.g. by the controller)",
)
def atm_console_logger(init_context: InitLoggerContext) -> logging.Logger:
    log = logging.Logger("atm", level=init_context.logger_config["log_level"])
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_OriginalFormat(_FORMAT, "%Y-%m-%d %H:%M:%S"))
    handler.addFilter(_UserAndFailures())
    log.addHandler(handler)
    return log
