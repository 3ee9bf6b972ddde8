"""Settings precedence (flag > env > file > default) and config-file errors."""

import pytest

from atm_assets.core.errors import ConfigError
from atm_assets.core.settings import load_settings


def write(tmp_path, text: str):
    path = tmp_path / "data_ingestor.yaml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(env={})
    assert (s.sync.batch_size, s.sync.checkpoint_every, s.sync.mode) == (100, 10, "upsert")
    assert s.database.host is None and s.database.sqlite_path == "storage/atm.db"
    assert s.lock_kind == "file" and s.lock.timeout_minutes == 30
    assert s.tushare.retry.max_attempts == 5 and s.tushare.calls_per_minute is None
    assert s.tushare.points == 120 and s.tushare.max_in_flight == 8


def test_flag_beats_env_beats_file_beats_default(tmp_path):
    path = write(
        tmp_path,
        "sync: {batch_size: 7, checkpoint_every: 3}\n"
        "database: {host: db.file, port: 6543}\n"
        "tushare: {calls_per_minute: 11, retry: {max_attempts: 2}}\n"
        "state: {use_db_state: true}\n",
    )
    env = {"ATM_BATCH_SIZE": "8", "DB_HOST": "db.env"}
    overrides = {"sync.batch_size": 9, "state.use_db_state": None}
    s = load_settings(path, env=env, overrides=overrides)
    assert s.sync.batch_size == 9  # flag
    assert s.database.host == "db.env"  # env over file
    assert (s.sync.checkpoint_every, s.database.port) == (3, 6543)  # file
    assert s.tushare.calls_per_minute == 11
    assert s.tushare.retry.max_attempts == 2 and s.state.use_db_state is True
    assert s.lock_kind == "db"
    assert s.sync.mode == "upsert"  # default
    assert s.source == (str(path),)


def test_config_file_from_env_var(tmp_path):
    path = write(tmp_path, "sync: {mode: append}\n")
    assert load_settings(env={"ATM_CONFIG": str(path)}).sync.mode == "append"


@pytest.mark.parametrize(
    "text,message",
    [
        ("sync: {batch_size: 7\n", "is not valid YAML"),
        ("sync: {batchsize: 7}\n", "unknown key sync.batchsize"),
        ("syncing: {}\n", "unknown section 'syncing'"),
        ("database: {password: hunter2}\n", "key database.password is not allowed"),
        ("sync: {batch_size: many}\n", "sync.batch_size: expected an integer"),
        ("sync: {batch_size: 0}\n", "sync.batch_size: must be an integer in 1..1,000,000, got 0"),
        ("sync: {mode: merge}\n", "sync.mode: must be one of upsert, append, got 'merge'"),
        ("lock: {kind: nfs}\n", "lock.kind: must be one of file, db"),
        ("database: {schema: 'x; DROP TABLE y'}\n", "database.schema: schema 'x; DROP"),
        ("schedule: {market_start: '2024-13-01'}\n", "schedule.market_start: expected a date"),
        ("- just\n- a list\n", "expected a mapping"),
        ("tushare: {retry: 5}\n", "tushare.retry must be a mapping"),
    ],
)
def test_a_bad_config_file_names_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        load_settings(path, env={})
    assert str(path) in str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_missing_explicit_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "nope.yaml", env={})


def test_a_bad_env_value_names_the_variable():
    with pytest.raises(ConfigError, match="environment variable ATM_BATCH_SIZE"):
        load_settings(env={"ATM_BATCH_SIZE": "lots"})
