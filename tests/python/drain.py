"""Drains one project through Project.consume until nothing is left, then prints what it was
granted: one of the four languages of ffi/tests/mixed_languages.rs (not a pytest module).

Usage: python3 drain.py STATE_DIR PROJECT SEED GO_FILE
"""

import os
import random
import sys
import time

import tollgate


def main() -> None:
    state, name, seed, go = sys.argv[1:5]
    rng = random.Random(int(seed))
    granted = 0
    with tollgate.Engine(state) as engine, engine.project(name) as project:
        while not os.path.exists(go):
            time.sleep(0.001)
        while True:
            want = rng.randint(1, 4096)
            try:
                project.consume(want)
                granted += want
            except tollgate.Exhausted:
                try:
                    granted += project.consume_partial(want)
                except tollgate.Exhausted:
                    break
    print(f"GRANTED {granted}")


if __name__ == "__main__":
    main()
