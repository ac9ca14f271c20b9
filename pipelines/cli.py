"""The ``usagecast`` command: one subcommand per pipeline step.

Each step lives in its own module under ``pipelines/`` and exposes two
functions, so this file only wires them and the heavy imports stay lazy:

- ``configure_parser(parser)`` adds the step's own flags;
- ``run(args, settings) -> str`` does the work and returns the one-line summary
  printed at the end.

``configure_parser`` must stay cheap: a module imports pandas, MLflow or GX inside
``run`` or below it, never at its top, so that ``usagecast --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from pathlib import Path

from pipelines.errors import UsagecastError
from pipelines.logs import configure_logging
from pipelines.settings import SettingsError, load_settings

logger = logging.getLogger(__name__)

COMMANDS = {
    "ingest": ("pipelines.ingest", "Ingest call logs or usage exports into the Parquet lake."),
    "validate": ("pipelines.validate", "Run the Great Expectations suites on the lake."),
    "train": ("pipelines.train", "Cross-validate, train and register forecasting models."),
    "models": ("pipelines.registry", "Show the model registry: champion, challenger, scores."),
    "forecast": ("pipelines.forecast", "Forecast usage and cost; write the reporting tables."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="usagecast", description="Forecast LLM/API usage and cost from call logs."
    )
    parser.add_argument(
        "--data-dir", type=Path, help="data folder (default: $USAGECAST_DATA_DIR or ./var)"
    )
    parser.add_argument(
        "--grain", help="series key, comma separated subset of provider,model,team"
    )
    parser.add_argument("--report-db-url", help="SQLAlchemy URL of the reporting database")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        module.configure_parser(subparser)
        subparser.set_defaults(module_name=module_name)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(verbose=args.verbose, quiet=args.quiet)

    try:
        settings = load_settings(
            data_dir=args.data_dir,
            grain=tuple(part.strip() for part in args.grain.split(",")) if args.grain else None,
            report_db_url=args.report_db_url,
            progress=False if args.quiet or not sys.stderr.isatty() else None,
        )
    except SettingsError as error:
        parser.error(str(error))

    module = importlib.import_module(args.module_name)
    started = time.monotonic()
    try:
        summary = module.run(args, settings)
    except (UsagecastError, SettingsError) as error:
        logger.error("%s failed: %s", args.command, error)
        return 1
    elapsed = time.monotonic() - started
    sys.stdout.write(f"{summary} ({elapsed:.1f}s)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
