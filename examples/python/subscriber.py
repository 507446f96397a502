"""Four threads meter one project while a subscriber prints the switch the moment it happens.

Usage: python3 examples/python/subscriber.py STATE_DIR [MIB]

The Active key covers half of the data and the Reserved key the rest; the workers never stop
at the switch, and the subscriber, called on the engine's callback thread, reports it. Exits 0
when every byte granted was charged exactly once over the pair's life.
"""

import itertools
import sys
import threading
import time

import tollgate

CHUNK = 64 * 1024


def key(key_id: str, limit: int) -> dict:
    return {
        "id": key_id,
        "delivery": "online",
        "kind": "commercial",
        "edition": "standard",
        "scheme": {"data_volume": {"limit_bytes": limit}},
    }


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    size = (int(sys.argv[2]) if len(sys.argv) == 3 else 16) << 20
    switched = threading.Event()
    started = time.monotonic()

    def on_event(event: dict) -> None:
        if event["kind"] == "switched":
            print(
                f"{time.monotonic() - started:8.3f} s  switched: {event['from']} is "
                f"{event['reason']}, now metering {event['to']} (event {event['seq']})",
                flush=True,
            )
            switched.set()

    with tollgate.Engine(sys.argv[1]) as engine:
        unsubscribe = engine.subscribe(on_event)
        name = f"copy-{time.time_ns()}"
        engine.create_project(name)
        engine.add_key(name, key(f"{name}-A", size // 2))
        engine.add_reserve(name, key(f"{name}-R", size))
        with engine.project(name) as project:
            granted = [0] * 4
            offsets = itertools.count(0, CHUNK)  # next() on it is atomic under the GIL

            def worker(index: int) -> None:
                while next(offsets) < size:
                    try:
                        project.consume(CHUNK)  # ask before moving the next chunk
                    except tollgate.Exhausted:
                        return
                    granted[index] += CHUNK

            threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            switched.wait(20)
            unsubscribe()
            usage = project.lifetime_usage()
    print(f"{time.monotonic() - started:8.3f} s  granted {sum(granted)} bytes with 4 threads")
    print(f"           charged {usage.total_used} bytes over the pair's life, "
          f"now metering {usage.active_key}")
    return 0 if switched.is_set() and usage.total_used == sum(granted) else 1


if __name__ == "__main__":
    sys.exit(main())
