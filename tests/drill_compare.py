"""TEST ONLY: a `fedlog compare` whose silo PARTITION is poisoned by tests/drill_client_app.py, for the
robust-aggregation comparison on real silos (the project's own ClientApp cannot poison, by design).

    .venv/bin/python tests/drill_compare.py configs/compare-robust-loghub.toml --drill 3:scale --out DIR

Every row is the comparison of the same spec run by ``fedlog compare``, with one silo sending a
poisoned update each round; compare the two tables row by row.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conftest import app_copy  # noqa: E402
from drill_client_app import DRILL_ENV, parse_drill  # noqa: E402

from fedlog.compare import run_comparison  # noqa: E402
from fedlog.config import default_run_config  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="a comparison TOML, as for fedlog compare")
    parser.add_argument("--drill", required=True, help="PARTITION:KIND[:FACTOR], see tests/drill_client_app.py")
    parser.add_argument("--out", default="outputs")
    args = parser.parse_args()
    parse_drill(args.drill)  # a bad spec fails here, not in every simulation
    os.environ[DRILL_ENV] = args.drill  # the simulation's ClientApps inherit it
    with tempfile.TemporaryDirectory() as tmp:
        app = app_copy(Path(tmp), "drill_client_app")
        out, _, passed = run_comparison(app, default_run_config(), Path(args.spec), Path(args.out).resolve())
    print(f"comparison directory: {out} (silo {args.drill} poisoned)")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
