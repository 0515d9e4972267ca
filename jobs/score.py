"""spark-submit entry point of a checkout: ``spark-submit jobs/score.py --config conf/job.yaml --set k=v``.

The same entry point ships in the wheel as ``batchinfer/submit.py`` (what ``batchinfer package``
prints and ``batchinfer submit`` runs, usable from any directory); this file only forwards to it.
Takes the options of ``batchinfer run`` (``--config`` names the YAML) and exits with the
documented exit codes, so a scheduler can tell a gate failure from an infrastructure failure.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from batchinfer.submit import main as submit_main

    return submit_main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
