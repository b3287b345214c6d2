"""The floor of replay's design: parse a nagios.log and fold every observation, no planner.

``python parsefold.py LOG CONFIG``, run by ``bench_replay`` with the
installed escalator's interpreter, interleaved with ``escalator replay`` on
the same file.  What replay adds on top of this is the planner and the
simulated clock; nothing in this design can replay faster than this.
"""

import sys

from escalator_handlers.monitoring import nagioslog
from escalator_handlers.config import load_config
from escalator_handlers.planning.state import State


def main(log: str, config: str) -> int:
    state = State(load_config(config))
    observe = state.observe
    with open(log, "rb") as f:  # as replay reads it (parse_file decodes in blocks)
        for item in nagioslog.parse_file(f):
            observe(*item)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
