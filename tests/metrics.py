"""Reading one series off a Prometheus text page (/metrics), shared by the tests that check one."""

from __future__ import annotations

import aiohttp


def metric_value(text: str, name: str, *, default: float | None = None, **labels: str) -> float:
    """The value of `name` with exactly `labels` (in any order). If absent: `default`, or the
    test fails when there is none (a labelled counter appears only once counted)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, rest = series.partition("{")
        got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
        if metric == name and got == want:
            return float(value)
    if default is not None:
        return default
    raise AssertionError(f"{name}{{{want}}} not in metrics")


async def read_metric(
    base: str, name: str, *, default: float | None = None, **labels: str
) -> float:
    """`metric_value` of the page at `base`/metrics (e.g. a served process's http://host:port)."""
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as resp:
        assert resp.status == 200, resp.status
        return metric_value(await resp.text(), name, default=default, **labels)
