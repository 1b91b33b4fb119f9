"""The Grafana dashboard asks only for series the exporter writes, by labels they carry.

The names come from ``METRICS`` through the exporter's translation (``.`` to
``_``, the unit ``s`` as ``_seconds``, ``_total`` after counters, a
histogram's ``_bucket``/``_sum``/``_count``), and a first test checks that
translation against what ``PrometheusMetrics`` really writes once every
instrument has recorded.  The labels come from that exposition.  Then every
query of every panel, and of the template variables, is checked against
them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

import pytest

from ocpp_trio.observability import METRICS, PrometheusMetrics

DASHBOARD: Final = (
    Path(__file__).resolve().parents[2] / "examples" / "grafana" / "ocpp-trio-dashboard.json"
)
#: Labels Prometheus itself adds to every scraped series.
TARGET_LABELS: Final = {"job", "instance"}
#: PromQL words that are not metric names.
PROMQL_WORDS: Final = {
    "by",
    "without",
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "rate",
    "increase",
    "topk",
    "histogram_quantile",
    "group",
}
SAMPLE: Final = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} ", re.MULTILINE)
LABEL: Final = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="')
LABEL_VALUES: Final = re.compile(r"^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$")


def exported_names() -> set[str]:
    """The sample names the Prometheus exposition writes, from ``METRICS``."""
    names: set[str] = set()
    for name, (kind, unit, _, _) in METRICS.items():
        base = name.replace(".", "_") + ("_seconds" if unit == "s" else "")
        if kind == "counter":
            names.add(base + "_total")
        elif kind == "histogram":
            names.update(base + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:  # updowncounter, gauge
            names.add(base)
    return names


def written_series() -> dict[str, set[str]]:
    """What the exporter writes once each instrument recorded: sample name -> labels."""
    metrics = PrometheusMetrics()
    telemetry = metrics.telemetry()
    attrs = telemetry.connection_attributes("CP1", "ocpp1.6", "csms")
    telemetry.connection_opened(attrs)
    telemetry.handshake_rejected("unauthorized")
    telemetry.reconnect("CP1")
    telemetry.message(attrs, "in", 2, "BootNotification")
    telemetry.callerror(attrs, "out", "NotSupported")
    telemetry.validation_failed(attrs, "BootNotification", False, "required", "reject")
    telemetry.limit(attrs, "max_message_size")
    telemetry.ping_rtt(attrs, 0.01)
    telemetry.watch_outbox(lambda: (2, 1.5), "CP1")

    async def answer() -> str:
        return "ok"

    import trio

    trio.run(telemetry.outbound_call, attrs, "Heartbeat", float("inf"), answer)
    text = metrics.exposition().decode()
    metrics.shutdown()
    series: dict[str, set[str]] = {}
    for name, labels in SAMPLE.findall(text):
        series.setdefault(name, set()).update(LABEL.findall(labels))
    return series


WRITTEN: Final = written_series()


def load() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    found = [
        (f"panel {panel['title']!r}", target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    # Grafana's label_values(SERIES, LABEL) asks what group by (LABEL) (SERIES) would.
    found += [
        (
            f"variable {var['name']!r}",
            LABEL_VALUES.sub(r"group by (\2) (\1)", var["query"]["query"]),
        )
        for var in dashboard["templating"]["list"]
        if var["type"] == "query"
    ]
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names in ``expr``: identifiers before a selector, a range, or a comma."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_selectors = re.sub(r"\{[^}]*\}|\[[^]]*\]", " ", without_strings)
    without_groupings = re.sub(r"\b(by|without)\s*\([^)]*\)", " ", without_selectors)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_groupings))
    return words - PROMQL_WORDS


def label_names(expr: str) -> set[str]:
    """The labels ``expr`` selects on or groups by."""
    labels: set[str] = set()
    for selector in re.findall(r"\{([^}]*)\}", expr):
        labels.update(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*[=!]~?", selector))
    for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels.update(label.strip() for label in grouping.split(",") if label.strip())
    return labels


def test_the_translation_is_what_the_exporter_writes() -> None:
    assert set(WRITTEN) == exported_names()


def test_the_dashboard_is_an_importable_dashboard() -> None:
    dashboard = load()
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["uid"]
    assert dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {var["name"]: var for var in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


@pytest.mark.parametrize(("where", "expr"), queries(load()))
def test_every_query_asks_for_written_series_by_their_labels(where: str, expr: str) -> None:
    names = metric_names(expr)
    assert names, f"{where}: no metric in {expr}"
    unknown = names - set(WRITTEN)
    assert not unknown, f"{where}: {sorted(unknown)} are not written (written: {sorted(WRITTEN)})"
    available = set().union(*(WRITTEN[name] for name in names)) | TARGET_LABELS
    missing = label_names(expr) - available
    assert not missing, f"{where}: labels {sorted(missing)} are not on {sorted(names)}"


def test_the_dashboard_shows_every_metric() -> None:
    shown = set().union(*(metric_names(expr) for _, expr in queries(load())))
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in shown}
    assert {re.sub(r"_(bucket|sum|count)$", "", name) for name in WRITTEN} <= families


def test_the_operating_guide_lists_every_metric_with_its_labels() -> None:
    guide = (DASHBOARD.parents[2] / "docs" / "guides" / "operating.md").read_text("utf-8")
    rows = re.findall(r"^\| `(ocpp_[a-z_]+)` \| [a-z]+ \|([^|]*)\|", guide, re.MULTILINE)
    listed = {name: set(re.findall(r"`([a-z_]+)`", labels)) for name, labels in rows}
    families: dict[str, set[str]] = {}
    for name, labels in WRITTEN.items():
        family = re.sub(r"_(bucket|sum|count)$", "", name) if "seconds_" in name else name
        families.setdefault(family, set()).update(labels - {"le"})
    scope = {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url"}
    assert listed == {name: labels - scope for name, labels in families.items()}
