"""Profile one review kind with cProfile: distinct typical worker reviews, the example config.

    .venv/bin/python benchmarks/profile_review.py [--mode mutate] [--reviews 300] [--top 25]
Prints the top entries by cumulative and by own time; divide the call counts by --reviews for
the per-review figures (how many times a function runs for one review).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

from webhook.core import config as config_module
from webhook.core import review


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("mutate", "validate"), default="mutate")
    parser.add_argument("--reviews", type=int, default=300)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    config = config_module.loads(common.EXAMPLE_CONFIG.read_text())
    bodies = [
        json.dumps(
            common.admission_review(
                common.typical_worker(i), uid=f"profile-{i}", namespace="pulsar-functions"
            ),
            separators=(",", ":"),
        ).encode()
        for i in range(args.reviews)
    ]
    mode: review.Mode = args.mode
    profile = cProfile.Profile()
    profile.enable()
    for body in bodies:
        common.review_body(body, config, mode)
    profile.disable()
    print(f"{args.reviews} distinct /{mode} reviews of a typical worker StatefulSet")
    stats = pstats.Stats(profile, stream=sys.stdout).strip_dirs()
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
