"""Reading one series off a Prometheus text page (/metrics), shared by the tests that check one."""

from __future__ import annotations


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of `name` with exactly `labels` (in any order); fails the test if absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, rest = series.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if metric == name and got == want:
            return float(value)
    raise AssertionError(f"{name}{{{want}}} not in metrics")
