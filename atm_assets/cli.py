"""The controller: the original script's commands, run through Dagster against the instance."""

import argparse
import gc
import json
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from atm_assets.core.errors import AtmError, ConfigError, TushareAuthError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Synced, but an open day answered no rows (not published yet): run again later.
EXIT_UNPUBLISHED = 4
# `freshness`: a synced dataset is behind the calendar (cli_freshness.EXIT_STALE).
EXIT_STALE = 3
# The run wrote, but a blocking data check failed on what it wrote.
EXIT_CHECKS_FAILED = 5
# Stopped by Ctrl-C (SIGINT) or SIGTERM: 128 + the signal, as shells report it.
EXIT_SIGINT = 130
INTERRUPTED = "Interrupted: {}; run the same command to resume"


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
    if name == "sync_stock_basic.py":
        return "python -m atm_assets.sync_stock_basic"
    return "python -m atm_assets.cli" if name in ("cli.py", "__main__.py", "-c", "") else name


def _add_stock_basic_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exchange", default="", help='SSE, SZSE, BSE, or "" for all (default: all)')
    p.add_argument("--list-status", default="L", help='L, D, P, G, or "" for all (default: L)')
    _add_sync_options(p, "stock_basic_sync_<exchange>_<status>")


_SELECTION_HELP = {
    "exchange": 'SSE, SZSE, BSE, or "" for all (default: all)',
    "start_date": "first day, YYYYMMDD",
    "end_date": "last day, YYYYMMDD (default: the start)",
    "start_period": "first report period (quarter end), YYYYMMDD",
    "end_period": "last report period, YYYYMMDD (default: the start)",
    "index_code": "one configured index code (default: every one of catalog.index_codes)",
}


def _add_catalog_commands(sync: Any) -> None:
    """`sync <name>` for every other catalog dataset (the user's too), flags by scheme."""
    from atm_assets.core.catalog import catalog_for
    from atm_assets.core.settings import load_settings
    from atm_assets.launch import takes

    # Not the process's cached settings: --config is not applied yet.
    for spec in catalog_for(load_settings()).values():
        if not spec.fetched or spec.name in ("stock_basic", "trade_cal", "daily", "adj_factor"):
            continue
        name = spec.name.replace("_", "-")
        p = sync.add_parser(
            name,
            aliases=[spec.name] if name != spec.name else [],
            help=f"sync Tushare {spec.api_name} ({spec.scheme} partitions)",
            description=f"{spec.description} Materialise the selected partitions of "
            f"{spec.name} as one Dagster run.",
        )
        for arg in takes(spec):
            flag = "--" + arg.replace("_", "-")
            if arg == spec.value_param:
                p.add_argument(
                    flag, default="", help=f"one of {', '.join(spec.values)} (default: all)"
                )
            else:
                p.add_argument(flag, help=_SELECTION_HELP[arg])
        if any(a in ("start_date", "start_period") for a in takes(spec)):
            p.add_argument(
                "--recent",
                action="store_true",
                help=f"the partitions {spec.name} may still change in or not have published yet "
                "(its revision window and publication lag, ending today), instead of dates",
            )
        p.set_defaults(dataset=spec.name)
        _add_sync_options(p, f"{spec.name}_sync_<partition>")


def build_parser(catalog: bool = True) -> argparse.ArgumentParser:
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
    _add_stock_basic_args(sb)

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
        p.add_argument("--start-date", help="first trade date, YYYYMMDD")
        p.add_argument("--end-date", help="last trade date, YYYYMMDD (default: --start-date)")
        p.add_argument(
            "--recent",
            action="store_true",
            help=f"the trade dates {api} may still change in or not have published yet (its "
            "revision window and publication lag, ending today), instead of dates",
        )
        _add_sync_options(p, f"{api}_sync_<YYYYMMDD>")

    if catalog:
        _add_catalog_commands(sync)

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
    from atm_assets import cli_freshness

    cli_freshness.add_parser(commands, _add_common)
    _add_research_commands(commands)
    return parser


def _add_research_commands(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="export a synced table as hive-partitioned Parquet, or daily bars for qlib",
        description="parquet: write DATASET's table to "
        "OUT/DATASET/year=YYYY/[month=MM/]part-0.parquet; files whose rows did not change since "
        "the last export are left as they are. qlib (daily only): OUT becomes a qlib provider "
        "directory (calendars/day.txt, instruments/all.txt, features/<code>/<field>.day.bin) of "
        "backward-adjusted bars and adj_factor; unchanged instruments are not rewritten.",
    )
    export.add_argument("export_dataset", metavar="DATASET", help="a synced dataset, e.g. daily")
    export.add_argument("--format", default="parquet", help="parquet (the default) or qlib")
    export.add_argument("--out", required=True, help="directory of the export")
    export.add_argument(
        "--start-date", help="first day, YYYYMMDD (parquet: whole months/years exported)"
    )
    export.add_argument("--end-date", help="last day, YYYYMMDD")
    export.add_argument("--full", action="store_true", help="rewrite every file")
    _add_common(export)

    read = commands.add_parser(
        "read",
        help="read a panel of daily bars (adjusted) or point-in-time financials to a file",
        description="daily: bars of a window with forward (qfq), backward (hfq) or no "
        "adjustment computed in the database, as pro_bar computes them. A point-in-time "
        "dataset (fina_indicator, income, …): on every day a stock traded, the latest value "
        "announced by then.",
    )
    read.add_argument("read_dataset", metavar="DATASET", help="daily or a point-in-time dataset")
    read.add_argument("--columns", required=True, help="comma-separated, e.g. close,vol")
    read.add_argument("--adjust", default="none", help="qfq, hfq or none (daily only)")
    read.add_argument("--start-date", required=True, help="first day, YYYYMMDD")
    read.add_argument("--end-date", required=True, help="last day, YYYYMMDD")
    read.add_argument("--codes", help="comma-separated ts_codes (default: every stock)")
    read.add_argument("--report-type", default="1", help="income & co.: report type (default 1)")
    read.add_argument("--wide", action="store_true", help="date × ts_code (default: long)")
    read.add_argument("--out", required=True, help="FILE.csv or FILE.parquet")
    _add_common(read)


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


def sync_command(args: argparse.Namespace) -> int:
    from atm_assets.core.catalog import find
    from atm_assets.launch import RUN_OPTIONS, sync, takes

    selection = {n: getattr(args, n, None) for n in takes(find(args.dataset))}
    selection["recent"] = getattr(args, "recent", None)
    options = {name: getattr(args, name, None) for name in RUN_OPTIONS}
    chosen, run = sync(
        args.dataset,
        selection,
        options,
        launched_by="controller",
        settings=_settings(args),
        verbose=bool(args.verbose),
        interruptible=True,
    )
    keys = chosen.keys
    shown = ", ".join(keys) if len(keys) <= 12 else f"{keys[0]} … {keys[-1]}"
    counted = f"{len(keys)} partition(s): {shown}" if keys else "one snapshot"
    stopped = 128 + run.interrupted if run.interrupted else EXIT_SIGINT
    for line in run.check_warnings:
        print(f"Check warning: {line}", file=sys.stderr)
    if run.failed_checks:
        print(f"Run {run.run_id} wrote {counted}, but data checks failed:")
        for line in run.failed_checks:
            print(f"Check failed: {line}", file=sys.stderr)
        print(
            "What is derived from these partitions is not built; see the checks in the UI, "
            "then sync them again once Tushare has published them whole",
            file=sys.stderr,
        )
        return EXIT_CHECKS_FAILED
    if run.success:
        print(f"Run {run.run_id} succeeded ({counted})")
        waiting = sorted(
            {
                day
                for meta in run.metadata.get(chosen.asset, [])
                for day in meta.get("unpublished") or []
            }
        )
        if waiting and not run.interrupted:
            print(
                f"Not published yet: {chosen.asset} {', '.join(waiting)} answered no rows; "
                "nothing written for them — run the same command again later",
                file=sys.stderr,
            )
            return EXIT_UNPUBLISHED
        if run.interrupted:
            # The signal came after the last write: nothing is left to resume.
            print("Interrupted: every partition was already written", file=sys.stderr)
            return stopped
        return EXIT_OK
    error = run.error
    assert error is not None
    if error.cls_name in INTERRUPTION_ERRORS:
        print(f"Run {run.run_id} canceled ({counted})")
        print(INTERRUPTED.format(error.message or "nothing written"), file=sys.stderr)
        return stopped
    print(f"Run {run.run_id} failed ({counted})")
    print(f"Error: {error.message}", file=sys.stderr)
    return EXIT_USAGE if error.is_usage_error else EXIT_FAILED


# How an interrupted run's error reads once Dagster's wrapping is taken off.
INTERRUPTION_ERRORS = ("SyncInterrupted", "DagsterExecutionInterruptedError", "KeyboardInterrupt")


def _resources(args: argparse.Namespace):
    from atm_assets.launch import open_resources

    return open_resources(_settings(args))


def storage_status(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from atm_assets.core.catalog import catalog_for
    from atm_assets.core.errors import DatabaseUnavailableError
    from atm_assets.core.writer import REGISTRY_TABLE, TableWriter

    settings = _settings(args)
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
        try:
            specs = catalog_for(settings)
        except ConfigError as e:
            # The synced tables still deserve a look: the built-ins, and what is wrong.
            from atm_assets.core.catalog import build_catalog

            print(f"Datasets file: {e} (its tables are not listed)")
            specs = build_catalog(None)
        for name in [*sorted(specs), "ingestion_state", "ingestion_lock", REGISTRY_TABLE]:
            if name not in tables:
                print(f"Table {name}: missing")
                continue
            if name in specs:
                count = TableWriter(engine, specs[name], schema).count()
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
    from atm_assets.launch import state_stores

    return state_stores(res.sync, args.use_db_state, args.state_dir)


def _legacy_state(args: argparse.Namespace, stores: list[tuple[Any, Any]], names: list[str]) -> int:
    """An original-script name (stock_basic_sync_all_L): the partition tasks it became."""
    from atm_assets.core.legacy import combine

    states = [s for store, _ in stores for n in names if (s := store.get(n))]
    if not states:
        where = " or ".join(store.describe() for store, _ in stores)
        print(
            f"No state for task {args.task_name} in {where}; ATM syncs it as "
            f"{len(names)} tasks ({', '.join(names)}), none of which has run",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if args.action == "show":
        print(json.dumps(combine(args.task_name, names, states).to_dict(), indent=2))
        return EXIT_OK
    held = [
        (state.task_name, holder)
        for state in states
        for _, locks in stores
        if (holder := locks.probe(state.task_name))
    ]
    if held and not args.force:
        from atm_assets.core.errors import TaskLockError

        raise TaskLockError(*held[0])
    for store, _ in stores:
        for name in names:
            if store.reset(name):
                print(f"Reset task {name} ({store.describe()})")
    return EXIT_OK


def _run_outcomes(run_ids: list[str | None]) -> dict[str, str]:
    """What became of the runs that saved these states; nothing when the instance cannot be
    read (the states are then shown as saved)."""
    from atm_assets.launch import run_outcomes

    try:
        return run_outcomes([r for r in run_ids if r])
    except Exception:  # noqa: BLE001 - a listing must not fail on the run history
        return {}


def state_command(args: argparse.Namespace) -> int:
    with _resources(args) as res:
        stores = _state_stores(args, res)
        if args.action == "list":
            rows = [(s, store, locks) for store, locks in stores for s in store.list()]
            if not rows:
                print(f"No task state in {stores[0][0].describe()}")
                return EXIT_OK
            from atm_assets.core.state import as_seen

            outcomes = _run_outcomes([s.run_id for s, _, _ in rows if s.status == "running"])
            header = f"{'TASK':<34} {'STATUS':<11} {'SAVED':>8} {'FETCHED':>8} {'ERRORS':>6}  "
            print(header + "LAST KEY      UPDATED                    STORE LOCK  DETAIL")
            for s, store, locks in rows:
                holder = locks.probe(s.task_name)
                lock = "free" if holder is None else f"held by pid {holder.get('pid', '?')}"
                status, detail = as_seen(s, outcomes.get(s.run_id or ""))
                print(
                    f"{s.task_name:<34} {status:<11} {s.total_saved:>8} {s.total_fetched:>8} "
                    f"{s.total_errors:>6}  {(s.last_processed_key or '-'):<13} "
                    f"{(s.updated_at or '-'):<26} {store.kind:<5} {lock:<5} {detail}".rstrip()
                )
            return EXIT_OK
        from atm_assets.core.legacy import successors

        found = [(store, locks) for store, locks in stores if store.get(args.task_name)]
        names = successors(args.task_name)
        if not found and names:
            return _legacy_state(args, stores, names)
        if not found:
            where = " or ".join(store.describe() for store, _ in stores)
            print(f"No state for task {args.task_name} in {where}", file=sys.stderr)
            return EXIT_FAILED
        store, locks = found[0]
        if args.action == "show":
            from atm_assets.core.state import as_seen

            state = store.get(args.task_name)
            body = state.to_dict()
            outcome = _run_outcomes([state.run_id]).get(state.run_id or "")
            body["status_now"], body["status_detail"] = as_seen(state, outcome)
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
    elif args.action == "check":
        ok = cli_tushare.contract_check(_settings(args), args.datasets, args.json)
        return EXIT_OK if ok else EXIT_FAILED
    else:
        cli_tushare.clear(_settings(args), args.api)
    return EXIT_OK


def _day(text: str | None, flag: str) -> Any:
    if not text:
        return None
    from atm_assets.core.errors import DataValidationError

    try:
        from atm_assets.core.dates import parse_day

        return parse_day(text)
    except DataValidationError:
        raise ConfigError(f"{flag} {text!r} is not a date (YYYYMMDD)") from None


def _research_target(args: argparse.Namespace) -> Any:
    """The target database's engine and schema, without Dagster (a read needs no run)."""
    from atm_assets.core.db import Database

    db = Database.from_environment(_settings(args).database)
    engine = db.create_engine()
    db.check(engine)
    return engine, db.schema


def export_command(args: argparse.Namespace) -> int:
    from atm_assets.core.catalog import catalog_for
    from atm_assets.core.export import FORMATS, export_dataset

    if args.format not in FORMATS:
        raise ConfigError(f"unknown export format {args.format!r}: expected {', '.join(FORMATS)}")
    specs = catalog_for(_settings(args))
    spec = specs.get(args.export_dataset.replace("-", "_"))
    if spec is None:
        known = ", ".join(sorted(specs))
        raise ConfigError(f"unknown dataset {args.export_dataset!r}: expected one of {known}")
    if args.format == "qlib" and spec.name != "daily":
        raise ConfigError(
            f"--format qlib writes daily bars (adjusted by adj_factor), not {spec.name}: "
            "export daily, or use --format parquet"
        )
    start, end = _day(args.start_date, "--start-date"), _day(args.end_date, "--end-date")
    engine, schema = _research_target(args)
    if args.format == "qlib":
        from atm_assets.core.qlib_export import export_qlib

        summary: Any = export_qlib(engine, args.out, schema, start, end, full=args.full)
    else:
        summary = export_dataset(engine, spec, args.out, schema, start, end, full=args.full)
    print(summary.line())
    return EXIT_OK


def read_command(args: argparse.Namespace) -> int:
    from atm_assets.core.readers import read_research, write_frame

    start, end = _day(args.start_date, "--start-date"), _day(args.end_date, "--end-date")
    codes = [c.strip() for c in args.codes.split(",") if c.strip()] if args.codes else None
    columns = [c.strip() for c in args.columns.split(",") if c.strip()]
    out = Path(args.out)
    if out.suffix not in (".csv", ".parquet"):
        raise ConfigError(f"--out {args.out}: expected a .csv or .parquet file")
    engine, schema = _research_target(args)
    frame = read_research(
        engine,
        args.read_dataset,
        columns,
        start,
        end,
        adjust=args.adjust,
        codes=codes,
        schema=schema,
        report_type=args.report_type,
        wide=args.wide,
    )
    write_frame(frame, out)
    shape = "wide" if args.wide else "long"
    print(f"Read {args.read_dataset} to {out}: {len(frame):,} rows ({shape})")
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Carry out parsed arguments; errors become one line on stderr and an exit code."""
    try:
        _prepare_env(args)
        if args.command == "sync":
            return sync_command(args)
        if args.command == "storage":
            return storage_status(args)
        if args.command == "tushare":
            return tushare_command(args)
        if args.command == "freshness":
            from atm_assets import cli_freshness

            return cli_freshness.command(_settings(args), args.datasets, args.json, args.as_of)
        if args.command == "export":
            return export_command(args)
        if args.command == "read":
            return read_command(args)
        return state_command(args)
    except (ConfigError, TushareAuthError) as e:
        print(f"Error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except AtmError as e:
        print(f"Error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        # Before or after a run (loading the definitions, reading state): nothing half-done.
        print("Interrupted: nothing was written", file=sys.stderr)
        return EXIT_SIGINT
    except BrokenPipeError:
        # `state list | head`: the reader left; say nothing more (not even at exit's flush).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _quiet_beta_warnings() -> None:
    # Dagster flags BackfillPolicy as beta on every import; the controller's output stays the
    # original script's log lines.
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")


def main(argv: Sequence[str] | None = None) -> int:
    _quiet_beta_warnings()
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--config" in argv[:-1]:
        # The parser offers the datasets of the config's datasets file: read that config.
        named = argv[argv.index("--config") + 1]
        if Path(named).is_file():
            os.environ["ATM_CONFIG"] = named
    try:
        parser = build_parser()
    except ConfigError as e:  # the user's datasets file, read to offer its datasets
        if "sync" in argv[:1] or not argv:
            print(f"Error: {e}", file=sys.stderr)
            return EXIT_USAGE
        # State, storage and the governor need no catalog: a broken datasets file must not
        # keep a user from looking at what was synced.
        parser = build_parser(catalog=False)
    return run(parser.parse_args(argv))


def sync_stock_basic_main(argv: Sequence[str] | None = None) -> int:
    """The original script's method 2 and 3 (sync_stock_basic.py / .sh): the flags of
    `controller.sh sync stock-basic`, without the subcommand."""
    _quiet_beta_warnings()
    parser = argparse.ArgumentParser(
        prog=program_name(),
        description="Sync Tushare stock_basic through Dagster (same as "
        "`controller.sh sync stock-basic`).",
    )
    _add_stock_basic_args(parser)
    args = parser.parse_args(argv)
    args.command, args.dataset = "sync", "stock-basic"
    return run(args)


def exit_with(code: int) -> NoReturn:
    """End the process with `code` once a command is done. Every object is frozen first, so
    the interpreter's last garbage collection skips the million-odd objects Dagster and a run
    leave behind (~0.4 s of every command); atexit handlers, flushes and finalizers still
    run. Only here, at a process's end: frozen objects are never collected."""
    gc.freeze()
    sys.exit(code)


def entry() -> NoReturn:
    """The `atm` command."""
    exit_with(main())


def sync_stock_basic_entry() -> NoReturn:
    """The `atm-sync-stock-basic` command."""
    exit_with(sync_stock_basic_main())


if __name__ == "__main__":
    exit_with(main())
