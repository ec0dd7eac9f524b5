"""Command line: ``crossformer list | fetch NAME | stats ...`` (also ``python -m crossformer ...``).

``fetch`` downloads (once) an official ImageNet-1k checkpoint into the cache and prints its path;
``list`` shows the official names and which are cached (a bad cached file — an HTML page, a cut-off
archive — is reported as BAD); ``stats`` is the dataset-statistics command line
(:func:`crossformer.stats.main`, also ``python -m crossformer.stats``). Failures print one line and exit with 1.
The console script ``crossformer`` (``pip install .``) runs :func:`main`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from .fetch import fetch_official
from .fetch_cache import BAIDU_ONLY, OFFICIAL_WEIGHTS, cache_report, cache_root
from .fetch_http import FetchError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crossformer", description="CrossFormer official weights and dataset "
                                                                "attention statistics.")
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="download an official checkpoint into the cache and print its path")
    f.add_argument("name", help=f"one of {', '.join(OFFICIAL_WEIGHTS)}")
    f.add_argument("--cache-dir", default=None, help="cache folder (default $CROSSFORMER_CACHE or "
                                                     "~/.cache/crossformer)")
    f.add_argument("--url", default=None, help="fetch from this URL instead of Google Drive (a mirror)")
    f.add_argument("--quiet", action="store_true", help="no progress bar, no messages")
    ls = sub.add_parser("list", help="list the official checkpoints and which are cached")
    ls.add_argument("--cache-dir", default=None)
    sub.add_parser("stats", add_help=False,
                   help="per-head attention statistics over a folder of images (crossformer stats --help)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["stats"]:                      # its own parser and messages
        from .stats import main as stats_main

        return stats_main(argv[1:])
    args = _parser().parse_args(argv)
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s",
                        stream=sys.stderr)
    try:
        if args.command == "fetch":
            path = fetch_official(args.name, cache_dir=args.cache_dir, url=args.url, progress=not quiet)
            print(path)
        else:
            report = cache_report(args.cache_dir, checksum=True)
            print(f"cache: {cache_root(args.cache_dir)}")
            for name, src in OFFICIAL_WEIGHTS.items():
                e = report[name]
                state = ("not cached" if e.missing else f"cached  {e.path}" if e.ok else
                         f"BAD     {e.path}: {e.problem} (run `python -m crossformer fetch {name}` again)")
                print(f"{name:<18} {src.filename:<20} {state}")
            for name in BAIDU_ONLY:
                print(f"{name:<18} {'':<20} Baidu Netdisk only (download by hand, open with --checkpoint)")
    except FetchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
