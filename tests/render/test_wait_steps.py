"""A wait step is drawn apart from the others, with what it awaits coming in (issue #19)."""
from __future__ import annotations

from pathlib import Path

import pytest

PAYMENTS = Path(__file__).resolve().parents[2] / "workflows" / "payments"


def _render(meshctl, *args) -> str:
    result = meshctl("render", PAYMENTS, *args)
    assert result.exit_code == 0, result.output
    return result.output


def test_mermaid_draws_wait_steps_as_hexagons_fed_by_what_they_await(meshctl):
    out = _render(meshctl, "--orchestration", "collect-payment", "--format", "mermaid")
    assert 'n_step_await_payment{{"await_payment<br/>wait for payment.confirmed<br/>' \
           '[timeout 30m → compensate]"}}' in out
    assert 'n_step_approve{{"approve<br/>wait for signal approve<br/>[when · approval]"}}' in out
    assert 'n_awaited_event_payment_confirmed>"payment.confirmed<br/>awaited event<br/>[match]"]' in out
    assert ('n_awaited_event_payment_confirmed -.->|"data.order_id = input.order_id"| '
            'n_step_await_payment') in out
    assert "n_awaited_signal_approve -.-> n_step_approve" in out
    assert 'n_step_hold_stock["hold_stock' in out  # an ordinary step keeps its box


def test_dot_draws_them_too(meshctl):
    out = _render(meshctl, "--orchestration", "collect-payment", "--format", "dot")
    assert '"step:await_payment" [label="await_payment\\nwait for payment.confirmed' in out
    assert "shape=hexagon" in out and "shape=cds" in out
    assert '"awaited:event:payment.confirmed" -> "step:await_payment"' in out


@pytest.mark.parametrize("fmt", ["svg", "html"])
def test_svg_and_html_draw_the_wait_step_and_the_awaited_event(meshctl, fmt, tmp_path):
    target = tmp_path / f"cp.{fmt}"
    _render(meshctl, "--orchestration", "collect-payment", "--format", fmt, "-o", target)
    text = target.read_text()
    assert "wait for payment.confirmed" in text and "awaited event" in text
    assert "awaited by a wait step" in text  # the legend names the edge
    assert "#fff8e6" in text  # the wait step's own fill


def test_the_flow_view_shows_the_awaited_event_going_into_the_orchestration(meshctl):
    out = _render(meshctl, "--format", "mermaid")
    assert ('n_event_payment_confirmed -.->|"awaited by await_payment"| n_orchestration_collect_payment'
            in out)


def test_the_run_timeout_is_a_badge_of_the_trigger(meshctl, tmp_path):
    mesh = tmp_path / "m"
    mesh.mkdir()
    (mesh / "m.yaml").write_text(
        "apiVersion: meshctl/v1\nkind: EventType\nmetadata: {name: a.b}\nspec: {external: true}\n---\n"
        "apiVersion: meshctl/v1\nkind: Orchestration\nmetadata: {name: o}\n"
        "spec:\n  trigger: {on: a.b}\n  timeout: 2h\n  on_timeout: compensate\n"
        "  steps:\n    - {id: s, wait: {signal: go}}\n")
    result = meshctl("render", mesh, "--orchestration", "o", "--format", "mermaid")
    assert result.exit_code == 0, result.output
    assert 'n_trigger(["a.b<br/>trigger<br/>[run timeout 120m → compensate]"])' in result.output
