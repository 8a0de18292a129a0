"""The public API: formats, golden Mermaid/DOT output, the two views and their errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.core.errors import MeshError, UsageError
from engine.render import FORMAT_NAMES, RENDERERS, Renderer, UnknownFormat, orchestration_view, render
from engine.render.dot import dot_escape
from engine.render.mermaid import mermaid_escape


def test_registry_has_the_four_formats():
    assert sorted(RENDERERS) == ["dot", "html", "mermaid", "svg"]
    assert sorted(FORMAT_NAMES) == sorted(RENDERERS)  # the names the CLI offers before loading any
    for name, renderer in RENDERERS.items():
        assert isinstance(renderer, Renderer)
        assert renderer.name == name


def test_unknown_format_lists_the_choices(shop_flow):
    with pytest.raises(UnknownFormat) as info:
        render(shop_flow, "png")
    assert isinstance(info.value, MeshError)
    assert info.value.exit_code == 2
    assert str(info.value) == "unknown format 'png'; choose one of: dot, html, mermaid, svg"


def test_unknown_orchestration_suggests_the_close_name(shop_mesh):
    with pytest.raises(UsageError) as info:
        orchestration_view(shop_mesh, "fulfill")
    assert info.value.exit_code == 2
    assert "unknown orchestration 'fulfill'; did you mean 'fulfil'?" in str(info.value)


def test_unknown_orchestration_without_orchestrations(shop_mesh):
    from dataclasses import replace
    from types import MappingProxyType

    empty = replace(shop_mesh, orchestrations=MappingProxyType({}))
    with pytest.raises(UsageError, match="this mesh has no orchestrations"):
        orchestration_view(empty, "fulfil")


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_flow_golden(shop_flow, golden, fmt):
    golden(f"shop-flow.{RENDERERS[fmt].suffix.lstrip('.')}", render(shop_flow, fmt))


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_orchestration_golden(shop_saga, golden, fmt):
    golden(f"shop-fulfil.{RENDERERS[fmt].suffix.lstrip('.')}", render(shop_saga, fmt))


def test_flow_view_marks_exactly_the_cycle_edges(shop_flow):
    marked = {(e.src, e.dst) for e in shop_flow.edges if e.marked}
    assert marked == {
        ("event:payment.attempted", "subscription:gateway/charge"),
        ("subscription:gateway/charge", "event:payment.failed"),
        ("event:payment.failed", "subscription:billing/retry"),
        ("subscription:billing/retry", "event:payment.attempted"),
    }


def test_flow_view_groups_subscriptions_by_service_and_shows_retries(shop_flow):
    nodes = {n.id: n for n in shop_flow.nodes}
    assert list(shop_flow.groups()) == ["billing", "gateway"]
    charge = nodes["subscription:gateway/charge"]
    assert charge.group == "gateway"
    assert charge.sublabel == "retry 4x exponential, full jitter → DLQ"
    assert nodes["dlq:shop-dlq"].kind == "dlq"
    assert "loop ≤3" in nodes["subscription:billing/retry"].badges


def test_mermaid_marks_cycles_and_dlqs(shop_flow):
    text = render(shop_flow, "mermaid")
    assert text.startswith("---\ntitle: \"Event flow: shop\"\n---\nflowchart LR\n")
    assert "n_event_payment_attempted ==> n_subscription_gateway_charge" in text
    assert "n_dlq_shop_dlq[(\"shop-dlq<br/>dead-letter queue\")]" in text
    assert "classDef dlq" in text and "classDef cycle" in text
    assert 'subgraph grp_2["gateway"]' in text


def test_dot_clusters_and_cycle_edges(shop_flow):
    text = render(shop_flow, "dot")
    assert 'subgraph "cluster_1" {' in text and 'label="billing"' in text
    assert '"dlq:shop-dlq" [label="shop-dlq\\ndead-letter queue", shape=cylinder' in text
    assert '"event:payment.failed" -> "subscription:billing/retry" [color="#d62728", penwidth=3' in text


def test_orchestration_view_steps_badges_and_edges(shop_saga):
    nodes = {n.id: n for n in shop_saga.nodes}
    assert shop_saga.title == "Orchestration: fulfil"
    assert nodes["trigger"].label == "order.placed"
    assert nodes["step:reserve"].sublabel == "emit stock.reserved"
    assert nodes["step:reserve"].badges == ("compensate",)
    assert nodes["step:pack_lines"].sublabel == "call python:shop:pack"
    assert nodes["step:pack_lines"].badges == ("foreach ×2", "retry 4x", "timeout 5s")
    assert nodes["step:audit"].badges == ("when",)
    assert nodes["end:on_success"].sublabel == "emit order.done"
    edges = {(e.src, e.dst): e for e in shop_saga.edges}
    assert edges["trigger", "step:reserve"].kind == "triggers"
    assert edges["trigger", "step:audit"].kind == "triggers"
    assert edges["step:reserve", "step:pack_lines"].kind == "needs"
    undo = edges["step:pack_lines", "step:reserve"]
    assert (undo.kind, undo.label) == ("compensates", "undo: emit stock.released")
    assert {(s, d) for (s, d), e in edges.items() if e.kind == "success"} == {
        ("step:pack_lines", "end:on_success"), ("step:audit", "end:on_success")}
    # any step can fail, not only the last ones
    assert [s for (s, d), e in edges.items() if e.kind == "failure"] == [
        "step:reserve",
        "step:pack_lines",
        "step:audit",
    ]


def test_circuit_breakers_are_badges_in_every_format(shop_flow):
    charge = {n.id: n for n in shop_flow.nodes}["subscription:gateway/charge"]
    assert "breaker 3 → 20s" in charge.badges
    for fmt in ("mermaid", "dot", "svg"):
        assert "breaker 3 → 20s" in render(shop_flow, fmt)


def test_compensation_is_dashed_in_text_formats(shop_saga):
    assert "n_step_pack_lines -.->|\"undo: emit stock.released\"| n_step_reserve" in render(
        shop_saga, "mermaid"
    )
    assert "style=dashed" in render(shop_saga, "dot")


@pytest.mark.parametrize(("text", "expected"), [
    ('say "hi"', "say #quot;hi#quot;"),
    ("a <b> #1", "a #lt;b#gt; #35;1"),
])
def test_mermaid_escape(text, expected):
    assert mermaid_escape(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ('say "hi"', 'say \\"hi\\"'),
    ("C:\\dir", "C:\\\\dir"),
    ("two\nlines", "two\\nlines"),
])
def test_dot_escape(text, expected):
    assert dot_escape(text) == expected


def test_a_count_window_is_labelled_with_its_count_and_timeout(meshctl):
    arena = Path(__file__).resolve().parents[2] / "workflows" / "arena"
    drawn = meshctl("render", arena, "--format", "mermaid").output
    assert '"lobby<br/>count window 4, timeout 2m"' in drawn
    assert "count window 0s" not in drawn
