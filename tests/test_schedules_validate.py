"""`meshctl validate` on `Schedule` documents: located errors for the cron expression, the
time zone and the emitted type, and the shape rules of the schema."""
from __future__ import annotations

import json

TYPE = """
apiVersion: meshctl/v1
kind: EventType
metadata: {name: report.due}
spec: {external: true}
---
"""


def schedule(spec: str) -> str:
    return TYPE + "apiVersion: meshctl/v1\nkind: Schedule\nmetadata: {name: nightly}\nspec:\n" + spec


def test_a_valid_schedule(write, meshctl):
    path = write(schedule('  cron: "30 2 * * MON-FRI"\n  timezone: Europe/Paris\n'
                          '  emit: {type: report.due, data: {at: "{{ tick.time }}"}}\n'))
    result = meshctl("validate", path)
    assert result.exit_code == 0, result.output


def test_a_bad_cron_is_located_and_names_its_field(write, meshctl, diagnostics):
    path = write(schedule('  cron: "30 25 * * *"\n  emit: {type: report.due}\n'))
    assert diagnostics(path) == [(10, 9, "error", "bad-cron")]
    result = meshctl("validate", path)
    assert result.exit_code == 1
    assert f"{path}:10:9: error[bad-cron]: schedule 'nightly': cron '30 25 * * *': hour: 25 is out of " \
           "range 0-23" in result.output


def test_a_cron_that_never_fires_is_an_error(write, meshctl):
    result = meshctl("validate", write(schedule('  cron: "0 0 30 2 *"\n  emit: {type: report.due}\n')))
    assert result.exit_code == 1 and "never fires" in result.output and "error[bad-cron]" in result.output


def test_an_unknown_time_zone_is_located_with_the_closest_name(write, meshctl, diagnostics):
    path = write(schedule('  cron: "@daily"\n  timezone: Europe/Pariss\n  emit: {type: report.due}\n'))
    assert diagnostics(path) == [(11, 13, "error", "unknown-timezone")]
    assert "did you mean 'Europe/Paris'?" in meshctl("validate", path).output


def test_the_emitted_type_must_be_declared(write, diagnostics, meshctl):
    path = write(schedule("  every: 15m\n  emit: {type: report.dues}\n"))
    assert diagnostics(path) == [(11, 16, "error", "unknown-event-type")]
    assert "did you mean 'report.due'?" in meshctl("validate", path).output


def test_a_scheduled_type_is_produced(write, diagnostics):
    """A type only a schedule emits, consumed by a service, is no dead flow."""
    path = write(
        "apiVersion: meshctl/v1\nkind: EventType\nmetadata: {name: report.due}\n---\n"
        "apiVersion: meshctl/v1\nkind: Service\nmetadata: {name: reports}\nspec:\n"
        "  subscriptions: [{on: report.due, do: [{log: hi}]}]\n---\n"
        "apiVersion: meshctl/v1\nkind: Schedule\nmetadata: {name: nightly}\n"
        "spec: {every: 1h, emit: {type: report.due}}\n"
    )
    assert diagnostics(path) == []


def test_shape_rules(write, meshctl):
    both = meshctl("validate", "--format", "json", write(schedule(
        '  cron: "@daily"\n  every: 1h\n  emit: {type: report.due}\n'), "both.yaml"))
    zone_with_every = meshctl("validate", write(schedule(
        "  every: 1h\n  timezone: UTC\n  emit: {type: report.due}\n"), "zone.yaml"))
    too_often = meshctl("validate", write(schedule("  every: 500ms\n  emit: {type: report.due}\n"), "f.yaml"))
    bad_policy = meshctl("validate", write(schedule(
        "  every: 1h\n  catch_up: all\n  emit: {type: report.due}\n"), "policy.yaml"))
    assert both.exit_code == 1 and json.loads(both.output)["meshes"][0]["errors"] >= 1
    assert zone_with_every.exit_code == 1 and "missing required key 'cron'" in zone_with_every.output
    assert too_often.exit_code == 1 and "shorter than 1s" in too_often.output
    assert bad_policy.exit_code == 1 and "catch_up" in bad_policy.output


def test_a_template_error_in_emit_is_reported(write, meshctl):
    result = meshctl("validate", write(schedule(
        '  every: 1h\n  emit: {type: report.due, data: {at: "{{ tick.time "}}\n')))
    assert result.exit_code == 1 and "error[template-syntax]" in result.output
