#!/usr/bin/env python3
"""JetBot collision avoidance on jetrtd: read P(blocked) from the
`collision` pipeline (config/jetbot.toml) and go forward or turn left.

    python3 collision_avoidance.py [--socket PATH] [--dry-run]

The socket defaults to $JETRTD_SOCKET, else /run/jetrtd/jetrtd.sock.
P(blocked) is the probability of the class labelled "blocked" or, for a
pipeline without labels, of class 0: the JetBot notebooks train with
torchvision's ImageFolder on folders blocked/ and free/, which numbers
classes in sorted order (the notebook reads prob_blocked = y.flatten()[0]).

With --dry-run (or without the jetbot package) it prints the decisions
instead of driving. A result older than --max-age seconds stops the robot:
never drive on stale camera data.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from jetrt_client import Client, ConnectionLost, DaemonError  # noqa: E402


class PrintRobot:
    def forward(self, speed):
        print("forward %.2f" % speed)

    def left(self, speed):
        print("left    %.2f" % speed)

    def stop(self):
        print("stop")


def decide(p_blocked, threshold):
    """The JetBot notebook's rule: blocked -> turn left, else forward."""
    return "left" if p_blocked > threshold else "forward"


def blocked_index(labels, name):
    """The class whose probability is P(blocked): the one labelled `name`
    when the pipeline has labels, else class 0 (the notebooks' order)."""
    if not labels:
        return 0
    if name not in labels:
        sys.exit("collision_avoidance: the pipeline's labels %s have no '%s' (see --blocked-label)"
                 % (labels, name))
    return labels.index(name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", default=None,
                    help="jetrtd's socket (default: $JETRTD_SOCKET, else /run/jetrtd/jetrtd.sock)")
    ap.add_argument("--pipeline", default="collision")
    ap.add_argument("--blocked-label", default="blocked")
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--speed", type=float, default=0.3)
    ap.add_argument("--max-age", type=float, default=0.25, help="seconds; older results stop the robot")
    ap.add_argument("--count", type=int, default=0, help="stop after this many results (0: run forever)")
    ap.add_argument("--dry-run", action="store_true")
    a = ap.parse_args()

    robot = PrintRobot()
    if not a.dry_run:
        try:
            from jetbot import Robot  # the JetBot's own package
            robot = Robot()
        except ImportError:
            print("jetbot package not found: printing decisions instead", file=sys.stderr)

    try:
        client = Client(a.socket, timeout=2.0, name="collision-avoidance")
        pipelines = {p["name"]: p for p in client.list()["pipelines"]}
        if a.pipeline not in pipelines:
            sys.exit("collision_avoidance: jetrtd at %s has no pipeline '%s' (it has: %s)"
                     % (client.path, a.pipeline, ", ".join(sorted(pipelines)) or "none"))
        blocked = blocked_index(pipelines[a.pipeline].get("labels") or [], a.blocked_label)
        client.subscribe(a.pipeline)
    except (ConnectionLost, DaemonError) as e:
        sys.exit("collision_avoidance: %s" % e)
    n = 0
    try:
        while a.count == 0 or n < a.count:
            try:
                r = client.next_result(timeout=a.max_age)
            except ConnectionLost:
                robot.stop()
                client.reconnect(attempts=1000, delay=0.5)
                continue
            if r is None or r.age > a.max_age or not r.probs:
                robot.stop()
                continue
            n += 1
            p = r.probs[blocked]
            if decide(p, a.threshold) == "left":
                robot.left(a.speed)
            else:
                robot.forward(a.speed)
            if a.dry_run:
                print("  seq %d P(blocked) %.3f age %.0f ms" % (r.seq, p, r.age * 1e3))
    finally:
        robot.stop()
        client.close()


if __name__ == "__main__":
    main()
