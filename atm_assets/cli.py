"""The controller: the original script's commands, run through Dagster against the instance."""

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from atm_assets.core.errors import AtmError, ConfigError, TushareAuthError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", help="config file (default: $ATM_CONFIG or config/data_ingestor.yaml)"
    )
    p.add_argument("--state-dir", help="directory of task state files (default storage/state)")
    p.add_argument(
        "--use-db-state",
        action="store_true",
        default=None,
        help="keep task state (and locks) in the database (several hosts)",
    )
    p.add_argument(
        "--verbose", action="store_true", help="on failure, print the full traceback too"
    )


def _add_sync_options(p: argparse.ArgumentParser, task_default: str) -> None:
    p.add_argument("--batch-size", type=int, help="rows per saved batch (default 100)")
    p.add_argument("--checkpoint-every", type=int, help="batches per checkpoint (default 10)")
    p.add_argument("--task-name", help=f"task name (default: {task_default})")
    resume = p.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume",
        dest="resume",
        action="store_true",
        default=True,
        help="continue from the saved checkpoint (default)",
    )
    resume.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="start over, ignoring any checkpoint",
    )
    p.add_argument("--mode", choices=None, help="upsert (default) or append")
    p.add_argument("--tushare-token", help="Tushare token (default: $TUSHARE_TOKEN)")
    _add_common(p)


def program_name() -> str:
    """How the user called us: controller.sh (it sets ATM_PROG), atm, or python -m."""
    if os.environ.get("ATM_PROG"):
        return os.environ["ATM_PROG"]
    name = Path(sys.argv[0]).name
    return "python -m atm_assets.cli" if name in ("cli.py", "__main__.py", "-c", "") else name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name(),
        description="ATM controller: sync Tushare data through Dagster, inspect storage and state.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sync = commands.add_parser("sync", help="sync a dataset").add_subparsers(
        dest="dataset", required=True, metavar="DATASET"
    )
    sb = sync.add_parser(
        "stock-basic",
        help="sync Tushare stock_basic",
        description="Materialise stock_basic for the selected exchange(s) × list status(es) "
        "as one Dagster run (visible in the UI afterwards).",
    )
    sb.add_argument("--exchange", default="", help='SSE, SZSE, BSE, or "" for all (default: all)')
    sb.add_argument("--list-status", default="L", help='L, D, P, G, or "" for all (default: L)')
    _add_sync_options(sb, "stock_basic_sync_<exchange>_<status>")

    tc = sync.add_parser(
        "trade-cal",
        help="sync Tushare trade_cal (the trading calendar)",
        description="Materialise trade_cal for the selected exchange(s) as one Dagster run.",
    )
    tc.add_argument("--exchange", default="", help='SSE, SZSE, BSE, or "" for all (default: all)')
    _add_sync_options(tc, "trade_cal_sync_<exchange>")

    for name, api in (("daily", "daily"), ("adj-factor", "adj_factor")):
        p = sync.add_parser(
            name,
            help=f"sync Tushare {api} for a range of trade dates",
            description=f"Materialise {api} for every trade date from --start-date to "
            "--end-date as one Dagster run; days trade_cal marks closed cost no API call "
            "(sync trade-cal --exchange SSE first).",
        )
        p.add_argument("--start-date", required=True, help="first trade date, YYYYMMDD")
        p.add_argument("--end-date", help="last trade date, YYYYMMDD (default: --start-date)")
        _add_sync_options(p, f"{api}_sync_<YYYYMMDD>")

    storage = commands.add_parser("storage", help="target database").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    status = storage.add_parser(
        "status", help="is the database reachable, which one, schema and table row counts"
    )
    _add_common(status)

    state = commands.add_parser("state", help="task state").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    listing = state.add_parser("list", help="list every task's state")
    _add_common(listing)
    show = state.add_parser("show", help="print one task's state as JSON")
    show.add_argument("task_name")
    _add_common(show)
    reset = state.add_parser("reset", help="delete a task's state (its checkpoint)")
    reset.add_argument("task_name")
    reset.add_argument("--force", action="store_true", help="reset even if the task is running")
    _add_common(reset)

    from atm_assets.cli_tushare import add_parser

    add_parser(commands, _add_common)
    return parser


def _prepare_env(args: argparse.Namespace) -> None:
    # Set before Dagster definitions are imported: resources read settings and secrets from the
    # environment, so the token never travels in run config, tags or metadata.
    if getattr(args, "config", None):
        if not Path(args.config).is_file():
            raise ConfigError(f"config file {args.config} does not exist")
        os.environ["ATM_CONFIG"] = args.config
    if getattr(args, "tushare_token", None):
        os.environ["TUSHARE_TOKEN"] = args.tushare_token
    if not os.environ.get("DAGSTER_HOME"):
        if not Path("dagster.yaml").is_file():
            raise ConfigError(
                "DAGSTER_HOME is not set and there is no dagster.yaml here: run from the ATM "
                "project directory (scripts/controller.sh does) or set DAGSTER_HOME"
            )
        os.environ["DAGSTER_HOME"] = str(Path.cwd())


def _settings(args: argparse.Namespace):
    from atm_assets.core.settings import load_settings

    return load_settings(
        overrides={"state.state_dir": args.state_dir, "state.use_db_state": args.use_db_state}
    )


def _sync_config(args: argparse.Namespace) -> dict[str, Any]:
    """The run config of one asset from the flags, validated here for a clean usage error."""
    from atm_assets.core.settings import check_sync_options

    check_sync_options(
        _settings(args).sync,
        mode=args.mode,
        batch_size=args.batch_size,
        checkpoint_every=args.checkpoint_every,
    )
    if args.task_name:
        from atm_assets.core.state import validate_task_name

        validate_task_name(args.task_name)
    config = {
        "mode": args.mode,
        "batch_size": args.batch_size,
        "checkpoint_every": args.checkpoint_every,
        "resume": args.resume,
        "task_name": args.task_name,
        "use_db_state": args.use_db_state,
        "state_dir": args.state_dir,
    }
    return {k: v for k, v in config.items() if v is not None}


def _trade_date_keys(args: argparse.Namespace) -> list[str]:
    from atm_assets.core.dates import parse_day
    from atm_assets.partitions import market_start, trade_date_partitions

    try:
        first = parse_day(args.start_date)
        last = parse_day(args.end_date or args.start_date)
    except AtmError as e:
        raise ConfigError(f"--start-date/--end-date: {e}") from None
    if last < first:
        raise ConfigError(f"--end-date {args.end_date} is before --start-date {args.start_date}")
    keys = [
        k
        for k in trade_date_partitions.get_partition_keys()
        if first.isoformat() <= k <= last.isoformat()
    ]
    if not keys:
        raise ConfigError(
            f"no trade-date partitions from {first} to {last}: they are weekdays from "
            f"ATM_MARKET_START={market_start()} to today"
        )
    return keys


def sync_command(args: argparse.Namespace) -> int:
    if args.dataset == "stock-basic":
        from atm_assets.partitions import stock_basic_keys

        keys = stock_basic_keys(args.exchange or None, args.list_status or None)
        job, asset = "stock_basic_job", "stock_basic"
    elif args.dataset == "trade-cal":
        from atm_assets.core.datasets import EXCHANGES

        if args.exchange and args.exchange not in EXCHANGES:
            raise ConfigError(
                f"unknown exchange {args.exchange!r}: expected one of {', '.join(EXCHANGES)}"
            )
        keys = [args.exchange] if args.exchange else list(EXCHANGES)
        job, asset = "trade_cal_job", "trade_cal"
    else:
        keys = _trade_date_keys(args)
        job, asset = "market_data_job", args.dataset.replace("-", "_")
    config = _sync_config(args)
    tags = {"atm/launched_by": "controller"}
    if asset == "stock_basic" and len(keys) == 1:
        from atm_assets.jobs import stock_basic_task_tags

        tags.update(stock_basic_task_tags(keys[0]))
        if args.task_name:
            tags["atm/task"] = args.task_name
    loggers = {
        "atm_console": {"config": {"log_level": "INFO", "verbose": bool(args.verbose)}},
        "console": {"config": {"log_level": "CRITICAL"}},
    }

    from atm_assets.launch import run_sync

    run = run_sync(job, [asset], keys, config, tags, loggers)
    shown = ", ".join(keys) if len(keys) <= 12 else f"{keys[0]} … {keys[-1]}"
    if run.success:
        print(f"Run {run.run_id} succeeded ({len(keys)} partition(s): {shown})")
        return EXIT_OK
    error = run.error
    assert error is not None
    print(f"Run {run.run_id} failed ({len(keys)} partition(s): {shown})")
    print(f"Error: {error.message}", file=sys.stderr)
    return EXIT_USAGE if error.is_usage_error else EXIT_FAILED


def _resources(args: argparse.Namespace):
    from dagster import build_resources

    from atm_assets.resources import DatabaseResource, SyncResource, TushareResource

    settings = _settings(args)
    database = DatabaseResource.from_settings(settings.database)
    tushare = TushareResource.from_settings(settings.tushare)
    sync = SyncResource.from_settings(settings, tushare, database)
    return build_resources({"database": database, "sync": sync})


def storage_status(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from atm_assets.core.datasets import DATASETS
    from atm_assets.core.errors import DatabaseUnavailableError
    from atm_assets.core.writer import TableWriter

    with _resources(args) as res:
        db = res.database
        print(f"Database: {db.describe()}")
        try:
            db.check()
        except DatabaseUnavailableError as e:
            print("Reachable: no")
            print(f"Error: {e}", file=sys.stderr)
            return EXIT_FAILED
        print("Reachable: yes")
        engine = db.engine()
        inspector = sa.inspect(engine)
        schema = db.schema_name
        if schema:
            present = schema in inspector.get_schema_names()
            print(f"Schema {schema}: {'present' if present else 'missing (created on first sync)'}")
        tables = set(inspector.get_table_names(schema=schema))
        for name in [*sorted(DATASETS), "ingestion_state", "ingestion_lock"]:
            if name not in tables:
                print(f"Table {name}: missing")
                continue
            if name in DATASETS:
                count = TableWriter(engine, DATASETS[name], schema).count()
            else:
                qualified = f'"{schema}"."{name}"' if schema else f'"{name}"'
                with engine.connect() as conn:
                    count = conn.exec_driver_sql(f"SELECT count(*) FROM {qualified}").scalar()
            print(f"Table {name}: {count} rows")
        stores = _state_stores(args, res)
        print(f"State store: {stores[0][0].describe()}")
        for store, _ in stores[1:]:
            print(f"Also task state in: {store.describe()} ({len(store.list())} task(s))")
        print(f"Locks: {stores[0][1].describe()}")
    return EXIT_OK


def _state_stores(args: argparse.Namespace, res: Any) -> list[tuple[Any, Any]]:
    """(store, locks) pairs: the configured store first, then the other one if it holds tasks,
    so a task synced with --use-db-state is found without repeating the flag."""
    from atm_assets.core.errors import DatabaseUnavailableError

    db_first = res.sync.use_db_state if args.use_db_state is None else args.use_db_state
    pairs = [
        (res.sync.state_store(flag, args.state_dir), res.sync.locks(flag))
        for flag in (db_first, not db_first)
    ]
    try:
        other_used = pairs[1][0].in_use()
    except DatabaseUnavailableError:
        other_used = False
    return pairs if other_used else pairs[:1]


def state_command(args: argparse.Namespace) -> int:
    with _resources(args) as res:
        stores = _state_stores(args, res)
        if args.action == "list":
            rows = [(s, store, locks) for store, locks in stores for s in store.list()]
            if not rows:
                print(f"No task state in {stores[0][0].describe()}")
                return EXIT_OK
            header = f"{'TASK':<34} {'STATUS':<10} {'SAVED':>8} {'FETCHED':>8} {'ERRORS':>6}  "
            print(header + "LAST KEY      UPDATED                    STORE LOCK")
            for s, store, locks in rows:
                holder = locks.probe(s.task_name)
                lock = "free" if holder is None else f"held by pid {holder.get('pid', '?')}"
                print(
                    f"{s.task_name:<34} {s.status:<10} {s.total_saved:>8} {s.total_fetched:>8} "
                    f"{s.total_errors:>6}  {(s.last_processed_key or '-'):<13} "
                    f"{(s.updated_at or '-'):<26} {store.kind:<5} {lock}"
                )
            return EXIT_OK
        found = [(store, locks) for store, locks in stores if store.get(args.task_name)]
        if not found:
            where = " or ".join(store.describe() for store, _ in stores)
            print(f"No state for task {args.task_name} in {where}", file=sys.stderr)
            return EXIT_FAILED
        store, locks = found[0]
        if args.action == "show":
            body = store.get(args.task_name).to_dict()
            body["store"] = store.describe()
            body["lock_holder"] = locks.probe(args.task_name)
            print(json.dumps(body, ensure_ascii=False, indent=2))
            return EXIT_OK
        holder = locks.probe(args.task_name)
        if holder is not None and not args.force:
            from atm_assets.core.errors import TaskLockError

            raise TaskLockError(args.task_name, holder)
        store.reset(args.task_name)
        print(f"Reset task {args.task_name} ({store.describe()})")
        return EXIT_OK


def tushare_command(args: argparse.Namespace) -> int:
    from atm_assets import cli_tushare

    if args.action == "status":
        cli_tushare.status(_settings(args))
    else:
        cli_tushare.clear(_settings(args), args.api)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    # Dagster flags BackfillPolicy as beta on every import; the controller's output stays the
    # original script's log lines.
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _prepare_env(args)
        if args.command == "sync":
            return sync_command(args)
        if args.command == "storage":
            return storage_status(args)
        if args.command == "tushare":
            return tushare_command(args)
        return state_command(args)
    except (ConfigError, TushareAuthError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except AtmError as e:
        print(f"Error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # `state list | head`: the reader left; say nothing more (not even at exit's flush).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
