"""Directories and files ATM writes, checked before any work so that an error names the
setting at fault instead of an OS error number."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from atm_assets.core.errors import ConfigError


def setting_label(key: str) -> str:
    """`ATM_STAGING_DIR (extensions.staging_dir)`: how the user sets it."""
    from atm_assets.core.settings import env_name

    env = env_name(key)
    return f"{env} ({key})" if env else key


def writable_dir(path: str | os.PathLike[str], key: str) -> Path:
    """`path` as a directory ATM can create files in (created if missing), or a ConfigError
    naming the setting `key`."""
    where = Path(path).absolute()
    try:
        where.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".atm-write-check.", dir=where)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(
            f"{setting_label(key)} is {where}: cannot write there ({_reason(e)})"
        ) from None
    return where


def writable_file(path: str | os.PathLike[str], key: str) -> Path:
    """`path` as a file ATM can create or write (its directory created if missing)."""
    where = Path(path).absolute()
    if where.is_dir():
        raise ConfigError(f"{setting_label(key)} is {where}: a directory, not a file")
    writable_dir(where.parent, key)
    if where.exists() and not os.access(where, os.W_OK):
        raise ConfigError(f"{setting_label(key)} is {where}: the file is not writable")
    return where


def _reason(error: OSError) -> str:
    text = error.strerror or type(error).__name__
    if error.filename and str(error.filename) not in text:
        text = f"{text}: {error.filename}"
    return text


def atomic_write_text(path: Path, text: str) -> None:
    """Replace `path` with `text` whole or not at all: written to a temporary file beside it,
    flushed to disk, then renamed over it (a killed writer leaves the old file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
