"""Command line entry point: run the Tushare sandbox server until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TypeVar

from atm_assets.sandbox.dataset import SandboxDataset
from atm_assets.sandbox.generators.listing import parse_size_spec
from atm_assets.sandbox.protocol import DEFAULT_TOKEN
from atm_assets.sandbox.query import API_SPECS
from atm_assets.sandbox.server import SandboxServer
from atm_assets.sandbox.world import FIDELITIES, QUIRKS, Fidelity

_N = TypeVar("_N", int, float)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atm-sandbox", description="Serve a Tushare Pro compatible sandbox API on loopback."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7878, help="0 picks a free port")
    parser.add_argument(
        "--token",
        default=None,
        help="accepted token (default: $SANDBOX_TOKEN, else sandbox-token)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--revision", type=int, default=1)
    parser.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="EXCHANGE:STATUS=N",
        help="override a stock_basic partition size, e.g. SSE:L=40000 (repeatable)",
    )
    parser.add_argument(
        "--rate-limit", type=int, default=None, help="calls per minute per api (default: none)"
    )
    parser.add_argument(
        "--rate-window", type=float, default=60.0, help="seconds of the rate-limit window"
    )
    parser.add_argument(
        "--api-rate-limit",
        action="append",
        default=[],
        metavar="API=N",
        help="calls per minute for one api, e.g. daily=60 (repeatable)",
    )
    parser.add_argument(
        "--daily-quota",
        action="append",
        default=[],
        metavar="[API=]N",
        help="calls per day (Asia/Shanghai) for one api, or N for every api (repeatable)",
    )
    parser.add_argument(
        "--latency", type=float, default=None, help="seconds before each answer (every api)"
    )
    parser.add_argument(
        "--latency-jitter", type=float, default=0.0, help="extra random seconds, 0..JITTER"
    )
    parser.add_argument(
        "--api-latency",
        action="append",
        default=[],
        metavar="API=SECONDS",
        help="seconds before each answer of one api (repeatable)",
    )
    parser.add_argument(
        "--fidelity",
        choices=FIDELITIES,
        default="simple",
        help="simple: the sandbox's former world (default); real: Tushare's quirks (README)",
    )
    parser.add_argument(
        "--quirk",
        action="append",
        default=[],
        metavar="NAME=on|off",
        help=f"turn one quirk on or off on top of --fidelity (repeatable): {', '.join(QUIRKS)}",
    )
    parser.add_argument("--verbose", action="store_true", help="log each request (token redacted)")
    parser.add_argument(
        "--cache-answers",
        action="store_true",
        help="serve a repeated fault-free request from its first answer (for benchmarks)",
    )
    return parser


def _api_value(
    spec: str, cast: Callable[[str], _N], *, bare: bool = False
) -> tuple[str | None, _N]:
    """Parse "api=value" (or a bare "value" for every api when allowed)."""
    api, sep, value = spec.rpartition("=")
    if not sep:
        if not bare:
            raise ValueError(f"expected API=VALUE, got {spec!r}")
        return None, cast(value)
    if api not in API_SPECS:
        raise ValueError(f"unknown api {api!r} in {spec!r}")
    return api, cast(value)


def _quirk(spec: str) -> tuple[str, bool]:
    """Parse "name=on" / "name=off" (also 1/0, true/false)."""
    name, sep, value = spec.partition("=")
    flag = {"on": True, "1": True, "true": True, "off": False, "0": False, "false": False}
    if not sep or value.lower() not in flag:
        raise ValueError(f"expected NAME=on|off, got {spec!r}")
    return name, flag[value.lower()]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        sizes = dict(parse_size_spec(spec) for spec in args.size)
        dataset = SandboxDataset(seed=args.seed, sizes=sizes or None, revision=args.revision)
        api_rates = [_api_value(spec, int) for spec in args.api_rate_limit]
        quotas = [_api_value(spec, int, bare=True) for spec in args.daily_quota]
        latencies = [_api_value(spec, float) for spec in args.api_latency]
        fidelity = Fidelity.named(args.fidelity).with_quirks(dict(map(_quirk, args.quirk)))
    except ValueError as exc:
        sys.stderr.write(f"atm-sandbox: {exc}\n")
        return 2
    token = args.token or os.environ.get("SANDBOX_TOKEN") or DEFAULT_TOKEN
    if args.verbose:
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
        )

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    server = SandboxServer(
        dataset,
        token=token,
        host=args.host,
        port=args.port,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        api_rate_limits={api: n for api, n in api_rates if api},
        daily_quota=next((n for api, n in reversed(quotas) if api is None), None),
        api_daily_quotas={api: n for api, n in quotas if api},
        latency=args.latency,
        latency_jitter=args.latency_jitter,
        api_latency={api: s for api, s in latencies if api},
        verbose=args.verbose,
        cache_answers=args.cache_answers,
        fidelity=fidelity,
    )
    try:
        server.start()
    except OSError as exc:
        sys.stderr.write(f"atm-sandbox: cannot listen on {args.host}:{args.port}: {exc}\n")
        return 1
    try:
        print(f"Tushare sandbox listening on {server.url}", flush=True)
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
