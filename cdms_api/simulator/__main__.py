"""``python -m cdms_api.simulator``: serve the simulator until interrupted."""

from __future__ import annotations

import argparse
import contextlib
import sys

from .app import Simulator
from .auth import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from .schema import DEFAULT_SCHEMA, Schema
from .seed import SEEDS
from .server import SimulatorServer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cdms_api.simulator",
        description="Serve a Dataverse-like Web API on this machine.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    parser.add_argument("--seed", choices=sorted(SEEDS), default="demo", help="initial data")
    parser.add_argument("--db", default=":memory:", help="SQLite file to keep rows in")
    parser.add_argument("--schema", default=str(DEFAULT_SCHEMA), help="schema file (JSON/YAML)")
    parser.add_argument(
        "--token-lifetime",
        type=float,
        default=None,
        help="seconds a bearer token stays valid (default 3599)",
    )
    limits = parser.add_argument_group(
        "service protection limits, per user (none unless given; Dataverse's: 6000 requests "
        "and 1200 s of execution per 300 s, 52 at once)"
    )
    limits.add_argument("--limit-requests", type=int, help="requests per window")
    limits.add_argument("--limit-execution", type=float, help="seconds of execution per window")
    limits.add_argument("--limit-concurrency", type=int, help="requests at once")
    limits.add_argument("--limit-window", type=float, default=300, help="the window (seconds)")
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow binding a non-loopback address"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    limits = dict(
        limit=args.limit_requests,
        window_s=args.limit_window,
        execution_s=args.limit_execution,
        concurrency=args.limit_concurrency,
    )
    simulator = Simulator(
        Schema.load(args.schema),
        db=args.db,
        seed=args.seed,
        token_lifetime_s=args.token_lifetime,
        limits=limits,
    )
    try:
        server = SimulatorServer(simulator, args.host, args.port, allow_remote=args.allow_remote)
    except (ValueError, OSError) as error:
        print(f"cannot start the simulator: {error}", file=sys.stderr)
        return 2
    print(server.base_url, flush=True)
    print(
        f"token endpoint: {server.token_url} (client id {DEMO_CLIENT_ID}, "
        f"secret {DEMO_CLIENT_SECRET})",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
