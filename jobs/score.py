"""spark-submit entry point: ``spark-submit jobs/score.py --config conf/job.yaml --set k=v ...``.

Takes the same options as ``batchinfer run`` (``--config`` names the YAML) and exits with the
documented exit codes, so a scheduler can tell a gate failure from an infrastructure failure.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from batchinfer.cli import main as cli_main

    args = list(argv)
    if "--config" in args:
        i = args.index("--config")
        if i + 1 >= len(args):
            print("jobs/score.py: --config needs a path", file=sys.stderr)
            return 2
        config = args[i + 1]
        del args[i : i + 2]
        args = ["run", config, *args]
    else:
        args = ["run", *args]
    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
