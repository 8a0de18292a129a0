"""Schema-valid documents -> the immutable :class:`~engine.language.model.Mesh`.

The only place where plain dicts become model objects. Documents reaching here have passed
the JSON Schema, so shapes are trusted; what the schema cannot say (duplicate names,
duplicate subscription names, the range of a duration written with a unit) is reported here
as diagnostics.
"""
from __future__ import annotations

import math
import re
from types import MappingProxyType
from typing import Any, Callable, Iterator

from ..core.errors import Diagnostic, Location, Note
from . import model as m
from .cron import schedule_problems
from .source import Document, SourceMap

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$")


def parse_duration(value: float | int | str) -> float:
    """Seconds in a duration: a number of seconds, or text such as ``500ms``, ``5s``, ``2m``.

    >>> parse_duration("1.5m"), parse_duration(3), parse_duration("250ms")
    (90.0, 3.0, 0.25)
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    found = _DURATION.match(str(value).strip())
    if not found:
        raise ValueError(f"not a duration: {value!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def _dotted(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "...'"


def _seconds(value: float) -> str:
    return f"{value:g}s" if value >= 1 or value == 0 else f"{value * 1000:.3g}ms"


_NO_LIMIT = "a call's timeout is at least 1ms; to mean 'no limit', leave the key out"


class _Doc:
    """One document's spec with its source map: small helpers to read values with locations.

    ``problems`` collects what reading found out of range (see :meth:`duration`).
    """

    def __init__(self, doc: Document):
        self.smap: SourceMap = doc.smap
        self.problems: list[Diagnostic] = []

    def loc(self, *path: Any) -> Location:
        return self.smap.at(path)

    def duration(
        self, value: Any, *path: Any, least: float = 0.0, most: float = m.MAX_DURATION, why: str | None = None
    ) -> float:
        """Seconds of the duration at *path*: between *least* and *most* (a located error otherwise,
        whose hint is *why* the least is what it is).

        The schema bounds a duration written as a number; one written with a unit (``99999999d``,
        or digits enough to overflow a float) is only known once parsed.
        """
        seconds = parse_duration(value)
        if seconds > most:
            longest = f"{most / 86400:.0f}d ({most / (365.25 * 86400):,.0f} years)"
            self.problems.append(
                Diagnostic(
                    self.loc(*path),
                    "bad-value",
                    f"{_dotted(path)}: duration {_shown(value)} is longer than {longest}",
                    hint="3652500d already spans all event time (years 0001-9999)"
                    if most == m.MAX_EVENT_SPAN
                    else "to mean 'no limit', leave the key out",
                )
            )
        elif seconds < least:
            self.problems.append(
                Diagnostic(
                    self.loc(*path),
                    "bad-value",
                    f"{_dotted(path)}: duration {_shown(value)} is shorter than {_seconds(least)}",
                    hint=why
                    or "window sizes, hopping `every`, session gaps and rate-limit periods are at least 1ms",
                )
            )
        return seconds

    def ref(self, name: str, *path: Any) -> m.Ref:
        return m.Ref(name, self.loc(*path))

    def template(self, text: str | None, *path: Any) -> m.TemplateString | None:
        return None if text is None else m.TemplateString(text, self.loc(*path))

    def template_value(self, value: Any, *path: Any) -> m.TemplateValue | None:
        if value is None:
            return None
        strings: list[m.TemplateString] = []
        self._collect(value, path, strings)
        return m.TemplateValue(m.freeze(value), tuple(strings), self.loc(*path))

    def _collect(self, value: Any, path: tuple, out: list[m.TemplateString]) -> None:
        if isinstance(value, str):
            out.append(m.TemplateString(value, self.loc(*path)))
        elif isinstance(value, dict):
            for key, item in value.items():
                self._collect(item, (*path, key), out)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._collect(item, (*path, i), out)

    def pattern(self, value: Any, *path: Any) -> m.Pattern | None:
        if value is None:
            return None
        keys: dict[tuple, Location] = {}
        self._keys(value, (), path, keys)
        return m.Pattern(m.freeze(value), self.loc(*path), MappingProxyType(keys))

    def _keys(self, value: Any, inner: tuple, path: tuple, out: dict) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                out[(*inner, key)] = self.smap.key((*path, *inner, key))
                self._keys(item, (*inner, key), path, out)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._keys(item, (*inner, i), path, out)

    def rate_limit(self, value: Any, *path: Any) -> m.RateLimit | None:
        if value is None:
            return None
        burst = value.get("burst", max(1, int(value["rate"])))
        rate, per = float(value["rate"]), self.duration(value.get("per", 1), *path, "per", least=m.MIN_PERIOD)
        if per / rate > m.MAX_DURATION:  # the wait for one token: a duration like any other
            self.problems.append(
                Diagnostic(
                    self.loc(*path, "rate"),
                    "bad-value",
                    f"{_dotted((*path, 'rate'))}: {rate:g} per {_seconds(per)} is one attempt "
                    f"every {per / rate:.3g}s, "
                    "longer than 36500d (100 years)",
                    hint="raise `rate` or shorten `per`",
                )
            )
        return m.RateLimit(rate, per, burst, value.get("overflow", "delay"), self.loc(*path))

    def loop(self, value: Any, *path: Any) -> m.Loop | None:
        return (
            None
            if value is None
            else m.Loop(value["max_hops"], self.loc(*path), value.get("policy", "allow"))
        )

    def state(self, value: Any, *path: Any) -> m.StateSpec | None:
        if value is None:
            return None
        return m.StateSpec(
            m.TemplateString(value["key"], self.loc(*path, "key")),
            self.loc(*path),
            m.freeze(value["schema"]) if "schema" in value else None,
            self.duration(value["ttl"], *path, "ttl", least=0.001) if "ttl" in value else None,
            value.get("max_bytes", m.DEFAULT_STATE_BYTES),
        )

    # --- delivery ---
    def retry(self, raw: dict, *path: Any) -> m.RetrySpec:
        def dur(key: str) -> float | None:
            return self.duration(raw[key], *path, key) if key in raw else None

        return m.RetrySpec(
            loc=self.loc(*path),
            max_attempts=raw.get("max_attempts", 3),
            backoff=raw.get("backoff", "exponential"),
            initial=dur("initial") if "initial" in raw else 1.0,
            multiplier=float(raw.get("multiplier", 2.0)),
            max_delay=dur("max_delay"),
            jitter=raw.get("jitter", "full"),
            max_event_age=dur("max_event_age"),
            non_retryable=tuple(raw.get("non_retryable", ())),
        )

    def delivery_spec(self, raw: dict, *path: Any) -> m.DeliverySpec:
        return m.DeliverySpec(
            loc=self.loc(*path),
            retry=self.retry(raw["retry"], *path, "retry") if "retry" in raw else None,
            dead_letter=raw.get("dead_letter"),
            circuit_breaker=self.breaker(raw.get("circuit_breaker"), *path, "circuit_breaker"),
        )

    def breaker(self, raw: dict | None, *path: Any) -> m.CircuitBreaker | None:
        if raw is None:
            return None
        return m.CircuitBreaker(self.loc(*path), raw["failure_threshold"],
                                self.duration(raw.get("reset_after", 30), *path, "reset_after"),
                                raw.get("on_open", "dead_letter"))

    def step_breaker(self, raw: dict | None, *path: Any) -> m.CircuitBreaker | None:
        """A step's breaker: it fails attempts while open and cannot hold them (a run waits on its step)."""
        if raw is not None and raw.get("on_open", "dead_letter") != "dead_letter":
            self.problems.append(Diagnostic(
                self.loc(*path, "on_open"), "bad-value",
                f"{_dotted((*path, 'on_open'))}: a step's circuit breaker cannot pause",
                hint="leave `on_open` out: while open, a step's attempts fail as `circuit-open`; "
                     "`on_open: pause` is for the deliveries of routes and subscriptions"))
        return self.breaker(raw, *path)

    def run_step(self, raw: dict | None, *path: Any) -> m.RunStep | None:
        if raw is None:
            return None
        return m.RunStep(self.ref(raw["orchestration"], *path, "orchestration"), self.loc(*path),
                         self.template_value(raw.get("input"), *path, "input"))

    def policy_ref(self, raw: Any, *path: Any) -> m.PolicyRef | None:
        if raw is None:
            return None
        if isinstance(raw, str):
            return m.PolicyRef(self.loc(*path), name=raw)
        return m.PolicyRef(self.loc(*path), inline=self.delivery_spec(raw, *path))

    def step_retry(self, raw: Any, *path: Any) -> m.PolicyRef | None:
        if raw is None or isinstance(raw, str):
            return self.policy_ref(raw, *path)
        return m.PolicyRef(
            self.loc(*path), inline=m.DeliverySpec(self.loc(*path), retry=self.retry(raw, *path))
        )

    # --- actions ---
    def actions(self, raw: Any, *path: Any) -> tuple[m.Action, ...]:
        if raw is None:
            return ()
        if isinstance(raw, dict):
            return (self.action(raw, *path),)
        return tuple(self.action(item, *path, i) for i, item in enumerate(raw))

    def action(self, raw: dict, *path: Any) -> m.Action:
        ((verb, body),) = raw.items()
        at = (*path, verb)
        loc = self.loc(*at)
        if verb == "emit":
            return m.EmitAction(
                loc,
                self.ref(body["type"], *at, "type"),
                self.template_value(body.get("data"), *at, "data"),
                self.template(body.get("subject"), *at, "subject"),
                self.template(body.get("source"), *at, "source"),
            )
        if verb == "call":
            return m.CallAction(
                loc,
                body.get("python"),
                body.get("http"),
                self.template_value(body.get("args"), *at, "args"),
                self.template_value(body.get("headers"), *at, "headers"),
                self.duration(body["timeout"], *at, "timeout", least=m.MIN_PERIOD, why=_NO_LIMIT)
                if "timeout" in body
                else None,
                body.get("method", "POST"),
                self.template_value(body["body"], *at, "body") if "body" in body else None,
                self.template(body["http"], *at, "http") if "http" in body else None,
            )
        if verb == "set":
            return m.SetAction(loc, self.template_value(body, *at))
        if verb == "log":
            if isinstance(body, str):
                return m.LogAction(loc, m.TemplateString(body, loc))
            return m.LogAction(loc, self.template(body["message"], *at, "message"), body.get("level", "info"))
        if verb == "sleep":
            return m.SleepAction(loc, self.duration(body, *at))
        return m.FailAction(loc, body.get("times"), body.get("error", "InjectedFault"), body.get("message"))


def build_mesh(root: str, files: list[str], documents: list[Document]) -> tuple[m.Mesh, list[Diagnostic]]:
    """Turn schema-valid documents into a Mesh; report duplicate names."""
    tables: dict[str, dict[str, Any]] = {kind: {} for kind in _BUILDERS}
    diagnostics: list[Diagnostic] = []
    for document in documents:
        kind, name = document.data["kind"], document.data["metadata"]["name"]
        reader = _Doc(document)
        element, problems = _BUILDERS[kind](
            reader, name, document.data.get("spec", {}), document.data["metadata"]
        )
        diagnostics += problems + reader.problems
        if name in tables[kind]:
            first = tables[kind][name].loc
            diagnostics.append(
                Diagnostic(
                    element.loc,
                    "duplicate-name",
                    f"{kind} {name!r} is defined twice",
                    hint="names must be unique per kind across the mesh",
                    notes=(Note(first, "first defined here"),),
                )
            )
            continue
        tables[kind][name] = element
    mesh = m.Mesh(
        root=root,
        files=tuple(files),
        event_types=MappingProxyType(tables["EventType"]),
        routes=MappingProxyType(tables["Route"]),
        services=MappingProxyType(tables["Service"]),
        orchestrations=MappingProxyType(tables["Orchestration"]),
        streams=MappingProxyType(tables["Stream"]),
        policies=MappingProxyType(tables["DeliveryPolicy"]),
        settings=next(iter(tables["Mesh"].values()), None),
        schedules=MappingProxyType(tables["Schedule"]),
        checks=MappingProxyType(tables["Check"]),
    )
    return mesh, diagnostics + list(_second_settings(tables["Mesh"]))


def _second_settings(settings: dict[str, m.MeshSettings]) -> Iterator[Diagnostic]:
    """A mesh has at most one `Mesh` document: its settings would otherwise depend on file order."""
    documents = list(settings.values())
    for other in documents[1:]:
        yield Diagnostic(
            other.loc,
            "duplicate-mesh",
            f"a second `Mesh` document ({other.name!r}) in this mesh",
            hint="keep one `Mesh` document and merge the settings into it",
            notes=(Note(documents[0].loc, f"the first is {documents[0].name!r}"),),
        )


Built = tuple[Any, list[Diagnostic]]


def _event_type(d: _Doc, name: str, spec: dict, meta: dict) -> Built:
    schema = spec.get("schema")
    version = spec.get("version", 1)
    versions: tuple[m.SchemaVersion, ...] = ()
    if "version" in spec or spec.get("previous"):
        earlier = [_schema_version(d, raw["version"], raw["schema"], "spec", "previous", i, "schema")
                   for i, raw in enumerate(spec.get("previous", ()))]
        current = _schema_version(d, version, schema if schema is not None else {}, "spec", "schema")
        versions = (*sorted(earlier, key=lambda v: v.version), current)
    return m.EventType(
        name,
        d.loc("metadata", "name"),
        m.freeze(schema) if schema is not None else None,
        spec.get("key"),
        spec.get("external", False),
        meta.get("description"),
        version,
        spec.get("compatibility", "backward"),
        versions,
    ), []


def _schema_version(d: _Doc, version: int, schema: Any, *at: Any) -> m.SchemaVersion:
    """One version of a schema, with where each of its nodes is written."""
    where: dict[tuple, Location] = {}
    stack: list[tuple[tuple, Any]] = [((), schema)]
    while stack:
        path, node = stack.pop()
        where[path] = d.loc(*at, *path)
        if isinstance(node, dict):
            stack.extend(((*path, str(k)), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend(((*path, i), v) for i, v in enumerate(node))
    return m.SchemaVersion(version, m.freeze(schema), d.loc(*at), MappingProxyType(where))


def _route(d: _Doc, name: str, spec: dict, meta: dict) -> Built:
    transform = spec.get("transform")
    if transform is not None:
        at = ("spec", "transform")
        transform = m.Transform(
            d.loc(*at),
            d.ref(transform["type"], *at, "type") if "type" in transform else None,
            d.template_value(transform.get("data"), *at, "data"),
            d.template(transform.get("subject"), *at, "subject"),
        )
    targets = []
    for i, raw in enumerate(spec.get("to", ())):
        loc = d.loc("spec", "to", i)
        if isinstance(raw, str):
            targets.append(m.Target("service", raw, loc))
        else:
            ((kind, value),) = raw.items()
            url = d.template(value, "spec", "to", i, "http") if kind == "http" else None
            targets.append(m.Target(kind, None if kind == "publish" else value, loc, url))
    return m.Route(
        name,
        d.loc("metadata", "name"),
        tuple(d.ref(t, "spec", "from", i) for i, t in enumerate(spec["from"])),
        d.pattern(spec.get("match"), "spec", "match"),
        d.template(spec.get("when"), "spec", "when"),
        transform,
        tuple(targets),
        d.policy_ref(spec.get("delivery"), "spec", "delivery"),
        d.loop(spec.get("loop"), "spec", "loop"),
        meta.get("description"),
        d.rate_limit(spec.get("rate_limit"), "spec", "rate_limit"),
    ), []


def _service(d: _Doc, name: str, spec: dict, meta: dict) -> Built:
    subs, problems, seen = [], [], {}
    for i, raw in enumerate(spec["subscriptions"]):
        at = ("spec", "subscriptions", i)
        sub_name = raw.get("name", raw["on"])
        ordering = raw.get("ordering")
        sub = m.Subscription(
            name,
            sub_name,
            d.ref(raw["on"], *at, "on"),
            d.loc(*at),
            d.actions(raw["do"], *at, "do"),
            d.pattern(raw.get("match"), *at, "match"),
            d.template(raw.get("when"), *at, "when"),
            tuple(d.ref(t, *at, "emits", j) for j, t in enumerate(raw.get("emits", ()))),
            None
            if ordering is None
            else m.Ordering(
                ordering["key"],
                ordering["sequence"],
                d.loc(*at, "ordering"),
                d.duration(ordering.get("gap_timeout", 60), *at, "ordering", "gap_timeout"),
                ordering.get("on_gap", "deliver"),
                ordering.get("start", 1),
            ),
            d.policy_ref(raw.get("delivery"), *at, "delivery"),
            d.loop(raw.get("loop"), *at, "loop"),
            d.rate_limit(raw.get("rate_limit"), *at, "rate_limit"),
            raw.get("version"),
            d.loc(*at, "version") if "version" in raw else None,
        )
        if sub_name in seen:
            problems.append(
                Diagnostic(
                    sub.loc,
                    "duplicate-name",
                    f"service {name!r} has two subscriptions named {sub_name!r}",
                    hint="give one of them a distinct `name:`",
                    notes=(Note(seen[sub_name], "first defined here"),),
                )
            )
            continue
        seen[sub_name] = sub.loc
        subs.append(sub)
    state = d.state(spec.get("state"), "spec", "state")
    return m.Service(name, d.loc("metadata", "name"), tuple(subs), meta.get("description"), state), problems


def _orchestration(d: _Doc, name: str, spec: dict, meta: dict) -> Built:
    trig = spec["trigger"]
    trigger = m.Trigger(
        d.ref(trig["on"], "spec", "trigger", "on"),
        d.loc("spec", "trigger"),
        d.pattern(trig.get("match"), "spec", "trigger", "match"),
        d.template(trig.get("when"), "spec", "trigger", "when"),
    )
    steps, problems, seen = [], [], {}
    previous: str | None = None
    for i, raw in enumerate(spec["steps"]):
        at = ("spec", "steps", i)
        if "needs" in raw:
            needs = tuple(d.ref(n, *at, "needs", j) for j, n in enumerate(raw["needs"]))
        else:  # absent `needs`: a sequence, the step follows the one before it
            needs = () if previous is None else (m.Ref(previous, d.loc(*at, "id")),)
        step = m.Step(
            raw["id"],
            d.loc(*at, "id"),
            d.actions(raw.get("do"), *at, "do"),
            needs,
            d.template(raw.get("when"), *at, "when"),
            d.template(raw.get("foreach"), *at, "foreach"),
            raw.get("concurrency"),
            d.duration(raw["timeout"], *at, "timeout") if "timeout" in raw else None,
            d.step_retry(raw.get("retry"), *at, "retry"),
            d.actions(raw.get("compensate"), *at, "compensate"),
            tuple(d.ref(t, *at, "emits", j) for j, t in enumerate(raw.get("emits", ()))),
            _wait(d, raw["wait"], *at, "wait") if "wait" in raw else None,
            d.run_step(raw.get("run"), *at, "run"),
            d.step_breaker(raw.get("circuit_breaker"), *at, "circuit_breaker"),
        )
        previous = raw["id"]
        if step.id in seen:
            problems.append(
                Diagnostic(
                    step.loc,
                    "duplicate-name",
                    f"step id {step.id!r} is used twice in {name!r}",
                    notes=(Note(seen[step.id], "first defined here"),),
                )
            )
            continue
        seen[step.id] = step.loc
        steps.append(step)
    return m.Orchestration(
        name,
        d.loc("metadata", "name"),
        trigger,
        tuple(steps),
        d.actions(spec.get("on_success"), "spec", "on_success"),
        d.actions(spec.get("on_failure"), "spec", "on_failure"),
        d.loop(spec.get("loop"), "spec", "loop"),
        meta.get("description"),
        d.state(spec.get("state"), "spec", "state"),
        d.duration(spec["timeout"], "spec", "timeout", least=0.001) if "timeout" in spec else None,
        spec.get("on_timeout", "fail"),
        d.template_value(spec.get("output"), "spec", "output"),
    ), problems


def _wait(d: _Doc, raw: dict, *at: Any) -> m.Wait:
    """A wait step's `wait:` (the schema has checked its shape)."""
    corr = raw.get("correlate")
    on_timeout = raw.get("on_timeout", "fail")
    return m.Wait(
        d.loc(*at),
        d.ref(raw["event"], *at, "event") if "event" in raw else None,
        raw.get("signal"),
        d.pattern(raw.get("match"), *at, "match"),
        None if corr is None else m.Correlate(
            m.TemplateString(corr["run"], d.loc(*at, "correlate", "run")),
            m.TemplateString(corr["event"], d.loc(*at, "correlate", "event")),
            d.loc(*at, "correlate"),
        ),
        d.duration(raw["timeout"], *at, "timeout", least=0.001) if "timeout" in raw else None,
        "continue" if isinstance(on_timeout, dict) else on_timeout,
        d.template_value(on_timeout["continue"], *at, "on_timeout", "continue")
        if isinstance(on_timeout, dict) else None,
        tuple(raw.get("approvers", ())),
    )


def _stream(d: _Doc, name: str, spec: dict, meta: dict) -> Built:
    # a count window may have a `timeout` beside it (the schema allows it with `count` only)
    kind = "count" if "count" in spec["window"] else next(iter(spec["window"]))
    raw = spec["window"][kind]
    at = ("spec", "window", kind)
    wloc = d.loc(*at)
    if kind == "tumbling":
        window = m.Window(
            "tumbling", wloc, size=d.duration(raw, *at, least=m.MIN_PERIOD, most=m.MAX_EVENT_SPAN)
        )
    elif kind == "hopping":
        window = m.Window(
            "hopping",
            wloc,
            size=d.duration(raw["size"], *at, "size", least=m.MIN_PERIOD, most=m.MAX_EVENT_SPAN),
            every=d.duration(raw["every"], *at, "every", least=m.MIN_PERIOD, most=m.MAX_EVENT_SPAN),
        )
    elif kind == "session":
        window = m.Window(
            "session", wloc, gap=d.duration(raw["gap"], *at, "gap", least=m.MIN_PERIOD, most=m.MAX_EVENT_SPAN)
        )
    else:
        window = _count_window(d, spec["window"])
    problems = list(_overlap(window))
    aggregates = []
    for agg_name, body in spec["aggregate"].items():
        ((op, fld),) = body.items()
        aloc = d.loc("spec", "aggregate", agg_name)
        if op in _LIST_OPS:
            value = d.template_value(fld.get("value"), "spec", "aggregate", agg_name, op, "value")
            aggregates.append(_list_aggregate(agg_name, op, fld, aloc, problems, value))
            continue
        aggregates.append(m.Aggregate(agg_name, op, None if op == "count" else fld, aloc))
    late = spec.get("late", {})
    return m.Stream(
        name,
        d.loc("metadata", "name"),
        tuple(d.ref(t, "spec", "from", i) for i, t in enumerate(spec["from"])),
        window,
        tuple(aggregates),
        d.ref(spec["emit"]["type"], "spec", "emit", "type"),
        d.template_value(spec["emit"].get("data"), "spec", "emit", "data"),
        d.pattern(spec.get("match"), "spec", "match"),
        tuple(spec["key"]) if isinstance(spec.get("key"), list) else spec.get("key"),
        spec.get("time", "time"),
        d.duration(spec.get("lateness", 0), "spec", "lateness", most=m.MAX_EVENT_SPAN),
        late.get("dead_letter"),
        d.ref(late["emit"]["type"], "spec", "late", "emit", "type") if "emit" in late else None,
        meta.get("description"),
    ), problems


def _count_window(d: _Doc, raw: dict) -> m.Window:
    timeout = None
    if "timeout" in raw:
        at = ("spec", "window", "timeout")
        timeout = d.duration(raw["timeout"], *at, least=m.MIN_PERIOD, most=m.MAX_EVENT_SPAN)
    return m.Window("count", d.loc("spec", "window", "count"), count=raw["count"], timeout=timeout)


# list aggregates: op -> (the key of their field, of their bound, the field's default)
_LIST_OPS = {
    "collect": ("field", "max", "data"),
    "distinct": ("field", "max", None),
    "top_n": ("by", "n", None),
}


def _list_aggregate(
    name: str, op: str, body: dict, loc: Location, problems: list, value: m.TemplateValue | None
) -> m.Aggregate:
    """collect, distinct, top_n: a list per window, so each needs a bound (`max`, `n`) in range.
    *value*: the templated projection of a `collect`, which replaces its field."""
    field_key, bound_key, default = _LIST_OPS[op]
    limit = body.get(bound_key)
    if limit is None or limit > m.MAX_AGGREGATE_ITEMS:
        shown = (
            f"needs `{bound_key}`, the most values a window keeps"
            if limit is None
            else f"keeps at most `{bound_key}: {m.MAX_AGGREGATE_ITEMS}` values, not {limit}"
        )
        problems.append(
            Diagnostic(
                loc,
                "unbounded-aggregate",
                f"aggregate {name!r} ({op}) {shown}",
                hint=f"add `{bound_key}: N` with N from 1 to {m.MAX_AGGREGATE_ITEMS:,}; a window keeps "
                "at most N values in memory and in checkpoints",
            )
        )
    field_path = None if value is not None else body.get(field_key, default)
    pick = body.get("field") if op == "top_n" else None
    return m.Aggregate(name, op, field_path, loc, min(limit or 1, m.MAX_AGGREGATE_ITEMS), pick, value)


def _overlap(window: m.Window) -> Iterator[Diagnostic]:
    """Hopping windows one event falls in (size / every): each is updated per event."""
    if window.kind == "hopping" and window.every and window.size / window.every > m.MAX_WINDOWS_PER_EVENT:
        yield Diagnostic(
            window.loc,
            "too-many-windows",
            f"hopping windows of {_seconds(window.size)} every {_seconds(window.every)}: each event "
            f"would fall in {window.size / window.every:,.0f} windows, more than {m.MAX_WINDOWS_PER_EVENT:,}",
            hint="make `every` at least size / 10000, or use a tumbling window",
        )


def _settings(d: _Doc, name: str, spec: dict, meta: dict) -> Built:
    allow = tuple(
        d.ref(module, "spec", "allow_modules", i) for i, module in enumerate(spec.get("allow_modules", ()))
    )
    return m.MeshSettings(
        name,
        d.loc("metadata", "name"),
        allow,
        meta.get("description"),
        _retention(d, spec.get("retention", {})),
        _secrets(d, spec["secrets"]) if "secrets" in spec else m.DEFAULT_SECRETS,
        m.DeploymentSettings(**spec.get("deployment", {})),
    ), []


def _secrets(d: _Doc, raw: dict) -> m.SecretSources:
    """`secrets:` of the Mesh document: `env` a prefix, true (the default prefix) or false (none)."""
    env = raw.get("env", True)
    prefix = m.SECRET_ENV_PREFIX if env is True else (env or None)
    return m.SecretSources(prefix, raw.get("file"), d.loc("spec", "secrets"))


def _retention(d: _Doc, raw: dict) -> m.Retention:
    """`retention:` of the Mesh document; a duration, or `forever`; what is not given keeps its default."""

    def read(key: str, default: float | None) -> float | None:
        if key not in raw:
            return default
        return math.inf if raw[key] == "forever" else d.duration(raw[key], "spec", "retention", key)

    base = m.DEFAULT_RETENTION
    return m.Retention(read("runs", base.runs), read("archive", base.archive), read("dedup", base.dedup))


def _schedule(d: _Doc, name: str, spec: dict, meta: dict) -> Built:
    """A Schedule; its cron expression and time zone are read here, where they are located."""
    timing = "cron" if "cron" in spec else "every"
    emit = d.action({"emit": spec["emit"]}, "spec")
    every = (
        d.duration(spec["every"], "spec", "every", least=1.0, why="a schedule fires at most once a second")
        if timing == "every" else None
    )
    schedule = m.Schedule(
        name, d.loc("metadata", "name"), emit, d.loc("spec", timing), spec.get("cron"),
        spec.get("timezone", "UTC"), every, spec.get("catch_up", "skip"),
        d.duration(spec.get("grace", 60), "spec", "grace"), meta.get("description"),
    )
    return schedule, list(schedule_problems(schedule, d.loc("spec", "timezone")))


# --- Check: the form of an invariant is its leading key; the keys each form needs and allows
_FORMS: dict[str, tuple[m.InvariantForm, tuple[str, ...], tuple[str, ...]]] = {
    # leading key: (form, keys it needs, keys it allows besides `name` and `per`)
    "never": ("never", (), ("never",)),
    "at_most": ("at_most", ("open", "close"), ("at_most", "open", "close")),
    "after": ("eventually", ("eventually",), ("after", "eventually", "within")),
    "total": ("total", ("equals",), ("total", "equals")),
    "always": ("always", ("that",), ("always", "that")),
    "state": ("state", ("that",), ("state", "that")),
}
_SHAPES = (
    "never, at_most (+ open, close), after (+ eventually), total (+ equals), always (+ that), state (+ that)"
)


def _check(d: _Doc, name: str, spec: dict, meta: dict) -> Built:
    """A Check: its invariants, each of one form (a located `invariant-form` error otherwise)."""
    invariants, problems, seen = [], [], {}
    for i, raw in enumerate(spec["invariants"]):
        at = ("spec", "invariants", i)
        found = list(_form_problems(d, raw, at))
        if found:
            problems += found
            continue
        invariant = _invariant(d, raw, raw.get("name", f"{name}#{i + 1}"), at)
        if invariant.name in seen:
            problems.append(Diagnostic(
                d.smap.key((*at, "name")) if "name" in raw else invariant.loc, "duplicate-name",
                f"check {name!r} has two invariants named {invariant.name!r}",
                hint="give one of them a distinct `name:`",
                notes=(Note(seen[invariant.name], "first defined here"),),
            ))
            continue
        seen[invariant.name] = invariant.loc
        invariants.append(invariant)
    return m.Check(name, d.loc("metadata", "name"), tuple(invariants), meta.get("description")), problems


def _form_problems(d: _Doc, raw: dict, at: tuple) -> Iterator[Diagnostic]:
    """Exactly one leading key, the keys its form needs, and no key of another form."""
    leads = [key for key in raw if key in _FORMS]
    if not leads:
        yield Diagnostic(d.loc(*at), "invariant-form", "invariant has no form",
                         hint=f"give exactly one of: {_SHAPES}")
        return
    if len(leads) > 1:
        yield Diagnostic(d.smap.key((*at, leads[1])), "invariant-form",
                         f"invariant has two forms, `{leads[0]}` and `{leads[1]}`",
                         hint="split it into two invariants, one form each")
        return
    form, needs, allows = _FORMS[leads[0]]
    missing = [key for key in needs if key not in raw]
    if missing:
        yield Diagnostic(d.smap.key((*at, leads[0])), "invariant-form",
                         f"`{leads[0]}` needs " + " and ".join(f"`{k}`" for k in missing),
                         hint=f"the forms: {_SHAPES}")
    for key in raw:
        if key not in allows and key != "name" and (key != "per" or form == "state"):
            yield Diagnostic(d.smap.key((*at, key)), "invariant-form",
                             f"`{key}` does not belong to an invariant of the form `{leads[0]}`",
                             hint="a `state` invariant reads `key` and `value`, not events: it has no `per`"
                             if key == "per" else f"the forms: {_SHAPES}")


def _invariant(d: _Doc, raw: dict, name: str, at: tuple) -> m.Invariant:
    def selectors(key: str) -> tuple[m.Selector, ...]:
        return _selectors(d, raw[key], *at, key) if key in raw else ()

    def total(key: str) -> m.Sum | None:
        if key not in raw:
            return None
        return m.Sum(_selectors(d, raw[key]["of"], *at, key, "of"),
                     m.TemplateString(raw[key]["value"], d.loc(*at, key, "value")), d.loc(*at, key))

    return m.Invariant(
        name, d.loc(*at), _FORMS[next(k for k in raw if k in _FORMS)][0],
        d.template(raw.get("per"), *at, "per"), never=selectors("never"), at_most=raw.get("at_most", 0),
        open=selectors("open"), close=selectors("close"),
        after=selectors("after"), eventually=selectors("eventually"),
        within=d.duration(raw["within"], *at, "within", least=0.001, why="a `within` is at least 1ms")
        if "within" in raw else None,
        total=total("total"), equals=total("equals"), always=selectors("always"),
        that=d.template(raw.get("that"), *at, "that"),
        state=d.ref(raw["state"], *at, "state") if "state" in raw else None,
    )


def _selectors(d: _Doc, raw: Any, *path: Any) -> tuple[m.Selector, ...]:
    """A selector or a list of them: an event type name, or ``{type, match, when}``."""
    items = [(raw, path)] if not isinstance(raw, list) else [(item, (*path, i)) for i, item in enumerate(raw)]
    out = []
    for item, at in items:
        if isinstance(item, str):
            out.append(m.Selector(d.ref(item, *at), d.loc(*at)))
        else:
            out.append(m.Selector(d.ref(item["type"], *at, "type"), d.loc(*at),
                                  d.pattern(item.get("match"), *at, "match"),
                                  d.template(item.get("when"), *at, "when")))
    return tuple(out)


def _policy(d: _Doc, name: str, spec: dict, meta: dict) -> Built:
    return m.DeliveryPolicy(
        name, d.loc("metadata", "name"), d.delivery_spec(spec, "spec"), meta.get("description")
    ), []


_BUILDERS: dict[str, Callable[[_Doc, str, dict, dict], Built]] = {
    "EventType": _event_type,
    "Route": _route,
    "Service": _service,
    "Orchestration": _orchestration,
    "Stream": _stream,
    "DeliveryPolicy": _policy,
    "Mesh": _settings,
    "Schedule": _schedule,
    "Check": _check,
}
