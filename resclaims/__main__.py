"""Command line: ``python -m resclaims`` (also installed as ``resclaims``)."""

from __future__ import annotations

import argparse
import importlib
import sys

from resclaims.datasets import FETCHERS, DataError, DataUnavailable, cache_dir
from resclaims.download import DownloadError


def fetch_data(names: list[str]) -> int:
    for name in names or sorted(FETCHERS):
        module, function = FETCHERS[name].split(":")
        try:
            path = getattr(importlib.import_module(module), function)(cache_dir())
        except (DownloadError, DataError, DataUnavailable) as error:
            print(f"resclaims: {name}: {error}", file=sys.stderr)
            return 1
        print(f"{name}: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="resclaims", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch-data", help="download data sets into the cache (data/), verified")
    fetch.add_argument("names", nargs="*", choices=sorted(FETCHERS), help="data sets (default: all)")
    args = parser.parse_args(argv)
    if args.command == "fetch-data":
        return fetch_data(args.names)
    return 2


if __name__ == "__main__":
    sys.exit(main())
