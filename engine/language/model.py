"""The immutable model of a mesh: what the YAML means, with the source location of every part.

Built only by :mod:`engine.language.build`; imports nothing from the engine but :mod:`engine.core.errors`.
Free-form JSON (patterns, data schemas, templated values) is kept *frozen*: mappings become
read-only ``MappingProxyType`` and lists become tuples, so nothing downstream can mutate it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Iterator, Literal, Mapping

from ..core.errors import Location

# Bounds of the DSL's numbers (docs/dsl.md, "Durations" and "Numbers"). A duration longer than
# MAX_DURATION would overflow a socket or lock timeout and carry clock times past year 9999 for
# nothing; a window or rate period shorter than MIN_PERIOD would make window indexes overflow.
# A Stream's windows and lateness are event time, which spans years 0001-9999: MAX_EVENT_SPAN.
MAX_DURATION = 36500 * 86400.0  # 100 years, written `36500d`
MAX_EVENT_SPAN = 3652500 * 86400.0  # 10,000 years, written `3652500d`
MIN_PERIOD = 0.001  # 1ms: window sizes, hopping `every`, session gaps, rate-limit `per`
MAX_WINDOWS_PER_EVENT = 10_000  # hopping windows one event falls in: size / every
# A count window and the list aggregates (collect, top_n, distinct) keep values per open window:
# their bounds keep a window's memory bounded.
MAX_WINDOW_COUNT = 100_000  # `window: {count: N}`
MAX_AGGREGATE_ITEMS = 10_000  # collect `max`, top_n `n`, distinct `max`


def freeze(value: Any) -> Any:
    """Deep read-only copy of plain JSON-like data."""
    if isinstance(value, dict):
        return MappingProxyType({k: freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain, mutable JSON-like copy of frozen data (for jsonschema, json.dumps...)."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class Ref:
    """A name used to refer to another element (event type, service, step, policy), where written."""

    name: str
    loc: Location


@dataclass(frozen=True, slots=True)
class TemplateString:
    """One Jinja2 template as written."""

    text: str
    loc: Location


@dataclass(frozen=True, slots=True)
class TemplateValue:
    """A JSON value whose strings are templates (``value`` frozen; ``strings`` lists each template)."""

    value: Any
    strings: tuple[TemplateString, ...]
    loc: Location


@dataclass(frozen=True, slots=True)
class Pattern:
    """An EventBridge-syntax event pattern (frozen JSON); ``keys`` locates each key by its path in it."""

    value: Mapping[str, Any]
    loc: Location
    keys: Mapping[tuple, Location] = field(default_factory=lambda: MappingProxyType({}))


# --- delivery policy ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RetrySpec:
    loc: Location
    max_attempts: int = 3
    backoff: Literal["fixed", "linear", "exponential"] = "exponential"
    initial: float = 1.0
    multiplier: float = 2.0
    max_delay: float | None = None
    jitter: Literal["none", "full", "equal"] = "full"
    max_event_age: float | None = None
    non_retryable: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    loc: Location
    failure_threshold: int
    reset_after: float = 30.0
    on_open: Literal["dead_letter", "pause"] = "dead_letter"  # pause: hold deliveries while open

    @property
    def pauses(self) -> bool:
        return self.on_open == "pause"


@dataclass(frozen=True, slots=True)
class DeliverySpec:
    loc: Location
    retry: RetrySpec | None = None
    dead_letter: str | None = None
    circuit_breaker: CircuitBreaker | None = None


@dataclass(frozen=True, slots=True)
class PolicyRef:
    """``delivery:``/``retry:`` as written: a DeliveryPolicy name, or an inline spec."""

    loc: Location
    name: str | None = None
    inline: DeliverySpec | None = None


@dataclass(frozen=True, slots=True)
class Loop:
    max_hops: int
    loc: Location
    policy: Literal["allow", "avoid-loop"] = "allow"


# --- actions ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EmitAction:
    loc: Location
    type: Ref
    data: TemplateValue | None = None
    subject: TemplateString | None = None
    source: TemplateString | None = None


@dataclass(frozen=True, slots=True)
class CallAction:
    loc: Location
    python: str | None = None
    http: str | None = None
    args: TemplateValue | None = None
    headers: TemplateValue | None = None
    timeout: float | None = None  # an HTTP request's timeout; a Python handler's real-time limit
    method: str = "POST"  # of an HTTP call
    body: TemplateValue | None = None  # of an HTTP call; None: the event itself (POST, PUT, PATCH)
    url: TemplateString | None = None  # `http` as a template (it and `headers` may read `secrets`)


@dataclass(frozen=True, slots=True)
class SetAction:
    loc: Location
    values: TemplateValue


@dataclass(frozen=True, slots=True)
class LogAction:
    loc: Location
    message: TemplateString
    level: str = "info"


@dataclass(frozen=True, slots=True)
class FailAction:
    loc: Location
    times: int | None = None
    error: str = "InjectedFault"
    message: str | None = None


@dataclass(frozen=True, slots=True)
class SleepAction:
    loc: Location
    seconds: float


Action = EmitAction | CallAction | SetAction | LogAction | FailAction | SleepAction


def emit_types(actions: Iterable[Action]) -> frozenset[str]:
    """The event types these actions' `emit`s produce."""
    return frozenset(a.type.name for a in actions if isinstance(a, EmitAction))


def runs_handler(actions: Iterable[Action]) -> bool:
    """Whether a Python handler runs among these actions (it may emit any type declared for it)."""
    return any(isinstance(a, CallAction) and a.python for a in actions)


# --- documents ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    loc: Location
    schema: Mapping[str, Any] | None = None
    key: str | None = None
    external: bool = False
    description: str | None = None
    version: int = 1
    compatibility: str = "backward"
    # every declared version, oldest first, the current one (`schema`) last; empty when the type
    # declares no `version` and no `previous` (its events carry no `dataschema`)
    versions: tuple["SchemaVersion", ...] = ()

    def schema_of(self, version: int) -> "SchemaVersion | None":
        """The declared version numbered *version*, or None."""
        return next((v for v in self.versions if v.version == version), None)


DATASCHEMA = "urn:meshctl:schema:{type}:{version}"  # an event's `dataschema` naming a version


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One version of an event type's schema, with the location of each of its nodes (by
    JSON Schema keyword path, e.g. ``("properties", "score")``) for located diagnostics."""

    version: int
    schema: Mapping[str, Any]
    loc: Location
    where: Mapping[tuple, Location] = field(default_factory=lambda: MappingProxyType({}))

    def locate(self, path: tuple) -> Location:
        """Where the node at *path* is written, or its nearest written ancestor."""
        while path and path not in self.where:
            path = path[:-1]
        return self.where.get(path, self.loc)


@dataclass(frozen=True, slots=True)
class Target:
    kind: Literal["service", "http", "publish"]
    value: str | None
    loc: Location
    url: TemplateString | None = None  # an http target's URL as a template (it may read `secrets`)


@dataclass(frozen=True, slots=True)
class Transform:
    loc: Location
    type: Ref | None = None
    data: TemplateValue | None = None
    subject: TemplateString | None = None


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    loc: Location
    sources: tuple[Ref, ...]
    match: Pattern | None = None
    when: TemplateString | None = None
    transform: Transform | None = None
    to: tuple[Target, ...] = ()
    delivery: PolicyRef | None = None
    loop: Loop | None = None
    description: str | None = None
    rate_limit: RateLimit | None = None

    def output_types(self) -> tuple[Ref, ...]:
        """The types this route delivers: the transform's type, or each input type unchanged."""
        if self.transform is not None and self.transform.type is not None:
            return (self.transform.type,)
        return self.sources

    def publishes(self) -> bool:
        return not self.to or any(t.kind == "publish" for t in self.to)


@dataclass(frozen=True, slots=True)
class Ordering:
    key: str
    sequence: str
    loc: Location
    gap_timeout: float = 60.0
    on_gap: Literal["deliver", "dead_letter"] = "deliver"
    start: int = 1


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: ``rate`` attempts per ``per`` seconds, ``burst`` at once."""

    rate: float
    per: float
    burst: int
    overflow: Literal["delay", "dead_letter"]
    loc: Location


@dataclass(frozen=True, slots=True)
class Subscription:
    service: str
    name: str
    on: Ref
    loc: Location
    actions: tuple[Action, ...]
    match: Pattern | None = None
    when: TemplateString | None = None
    emits: tuple[Ref, ...] = ()
    ordering: Ordering | None = None
    delivery: PolicyRef | None = None
    loop: Loop | None = None
    rate_limit: RateLimit | None = None
    version: int | None = None  # the version of its type's schema it reads (None: the current)
    version_loc: Location | None = None

    @property
    def label(self) -> str:
        return f"{self.service}/{self.name}"


DEFAULT_STATE_BYTES = 65536


@dataclass(frozen=True, slots=True)
class StateSpec:
    """Durable keyed state of a service or an orchestration (``state:``): the value of one key
    is what its Python handlers see as ``context.state``."""

    key: TemplateString
    loc: Location
    schema: Any = None  # a JSON Schema of the value (None: any JSON object)
    ttl: float | None = None  # seconds a key lives after its last write (None: for ever)
    max_bytes: int = DEFAULT_STATE_BYTES


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    loc: Location
    subscriptions: tuple[Subscription, ...]
    description: str | None = None
    state: StateSpec | None = None


@dataclass(frozen=True, slots=True)
class Correlate:
    """Which awaited event belongs to which run: the two renderings must be equal."""

    run: TemplateString  # in the run's context, when the wait starts
    event: TemplateString  # on the incoming event (`data`, `event`)
    loc: Location


@dataclass(frozen=True, slots=True)
class Wait:
    """A step that pauses its run until an event or a signal arrives, or its timeout."""

    loc: Location
    event: Ref | None = None  # the awaited event type (with `correlate`)...
    signal: str | None = None  # ...or the awaited signal's name
    match: Pattern | None = None
    correlate: Correlate | None = None
    timeout: float | None = None
    on_timeout: str = "fail"  # fail | compensate | continue
    default: TemplateValue | None = None  # the output of `on_timeout: {continue: VALUE}`
    approvers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunStep:
    """``run:`` of a step: start a child run of another orchestration and wait for it."""

    orchestration: Ref
    loc: Location
    input: TemplateValue | None = None  # None: the parent run's input


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    loc: Location
    actions: tuple[Action, ...]
    needs: tuple[Ref, ...]  # resolved: an absent `needs` is the previous step
    when: TemplateString | None = None
    foreach: TemplateString | None = None
    concurrency: int | None = None
    timeout: float | None = None
    retry: PolicyRef | None = None
    compensate: tuple[Action, ...] = ()
    emits: tuple[Ref, ...] = ()  # what its `call` handlers may emit
    wait: Wait | None = None  # a wait step has no actions
    run: RunStep | None = None  # a step that runs a child orchestration (then `actions` is empty)
    circuit_breaker: CircuitBreaker | None = None  # the step's own (else its `retry` policy's)

    def may_emit(self) -> frozenset[str]:
        """Every type an attempt of this step (or of its compensation) may emit: its `emits`
        and its own `emit` actions, which need no listing."""
        return frozenset(r.name for r in self.emits) | emit_types(self.actions + self.compensate)


@dataclass(frozen=True, slots=True)
class Trigger:
    on: Ref
    loc: Location
    match: Pattern | None = None
    when: TemplateString | None = None


@dataclass(frozen=True, slots=True)
class Orchestration:
    name: str
    loc: Location
    trigger: Trigger
    steps: tuple[Step, ...]
    on_success: tuple[Action, ...] = ()
    on_failure: tuple[Action, ...] = ()
    loop: Loop | None = None
    description: str | None = None
    state: StateSpec | None = None
    timeout: float | None = None  # of the whole run
    on_timeout: str = "fail"  # fail | compensate
    output: TemplateValue | None = None  # the run's result (None: each done step's output by id)

    def all_actions(self) -> tuple[Action, ...]:
        out: list[Action] = []
        for step in self.steps:
            out += step.actions + step.compensate
        return tuple(out) + self.on_success + self.on_failure

    def declared_emits(self) -> tuple[Ref, ...]:
        """The `emits` of every step: what its handlers may emit."""
        return tuple(ref for step in self.steps for ref in step.emits)

    def end_may_emit(self) -> frozenset[str]:
        """What `on_success` and `on_failure` may emit: their `emit` actions, and from a handler
        any type a step declares."""
        declared = frozenset(r.name for r in self.declared_emits())
        return declared | emit_types(self.on_success + self.on_failure)


@dataclass(frozen=True, slots=True)
class Window:
    kind: Literal["tumbling", "hopping", "session", "count"]
    loc: Location
    size: float | None = None  # tumbling and hopping
    every: float | None = None  # hopping
    gap: float | None = None  # session
    count: int | None = None  # count: events per window
    timeout: float | None = None  # count: event time after its first event that closes a partial one


@dataclass(frozen=True, slots=True)
class Aggregate:
    name: str
    op: str
    field: str | None  # top_n: the `by` field
    loc: Location
    limit: int | None = None  # collect and distinct `max`, top_n `n`
    pick: str | None = None  # top_n: the field kept of each event (default: the `by` value)
    value: TemplateValue | None = None  # collect: rendered per event (`data`, `event`), instead of `field`


@dataclass(frozen=True, slots=True)
class Stream:
    name: str
    loc: Location
    sources: tuple[Ref, ...]
    window: Window
    aggregates: tuple[Aggregate, ...]
    emit_type: Ref
    emit_data: TemplateValue | None = None
    match: Pattern | None = None
    key: str | tuple[str, ...] | None = None  # a tuple: several fields, together one key (emitted as a list)
    time: str = "time"
    lateness: float = 0.0
    late_dead_letter: str | None = None
    late_emit_type: Ref | None = None
    description: str | None = None

    @property
    def key_paths(self) -> tuple[str, ...]:
        """The field paths of the key: none (one global group), one, or several (a composite key)."""
        if self.key is None:
            return ()
        return (self.key,) if isinstance(self.key, str) else self.key


@dataclass(frozen=True, slots=True)
class Schedule:
    """A ``Schedule``: emits ``emit`` at each tick of ``cron`` (in ``timezone``) or of ``every``."""

    name: str
    loc: Location
    emit: EmitAction
    timing_loc: Location  # where `cron` or `every` is written
    cron: str | None = None
    timezone: str = "UTC"
    every: float | None = None  # seconds; ticks at its multiples since the epoch
    catch_up: Literal["skip", "fire_once"] = "skip"
    grace: float = 60.0  # seconds late a tick may fire as itself (a deployment's)
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Selector:
    """Which events an invariant counts: its ``type``, and the ``match`` and ``when`` they meet too."""

    type: Ref
    loc: Location
    match: Pattern | None = None
    when: TemplateString | None = None


@dataclass(frozen=True, slots=True)
class Sum:
    """``{of, value}`` of a ``total``/``equals``: the sum of ``value`` over the events ``of`` selects."""

    of: tuple[Selector, ...]
    value: TemplateString
    loc: Location


InvariantForm = Literal["never", "at_most", "eventually", "total", "always", "state"]


@dataclass(frozen=True, slots=True)
class Invariant:
    """One invariant of a ``Check``; ``form`` says which of its fields are set (docs/invariants.md)."""

    name: str
    loc: Location
    form: InvariantForm
    per: TemplateString | None = None
    never: tuple[Selector, ...] = ()
    at_most: int = 0
    open: tuple[Selector, ...] = ()
    close: tuple[Selector, ...] = ()
    after: tuple[Selector, ...] = ()
    eventually: tuple[Selector, ...] = ()
    within: float | None = None  # seconds of clock time; None: by the end of the run
    total: Sum | None = None
    equals: Sum | None = None
    always: tuple[Selector, ...] = ()
    that: TemplateString | None = None  # with `always` (over an event) or `state` (over key, value)
    state: Ref | None = None  # `service:NAME` or `orchestration:NAME`

    def selectors(self) -> tuple[Selector, ...]:
        """Every selector of the invariant, in the order written."""
        sums = [s.of for s in (self.total, self.equals) if s is not None]
        return (*self.never, *self.open, *self.close, *self.after, *self.eventually, *self.always,
                *(sel for of in sums for sel in of))


@dataclass(frozen=True, slots=True)
class Check:
    """A ``Check``: invariants every run of the mesh must keep."""

    name: str
    loc: Location
    invariants: tuple[Invariant, ...]
    description: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    name: str
    loc: Location
    spec: DeliverySpec
    description: str | None = None


DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Retention:
    """How long a store keeps what a run leaves behind, in seconds of clock time (``inf``: for ever).

    ``runs``: a finished orchestration run, counted from its end (``meshctl runs``); ``archive``:
    input and emitted events (``meshctl replay``); ``dedup``: the record that a consumer took
    an event, so a redelivery within it is skipped. ``dedup`` None means the store's own
    default: one hour in memory, seven days in a durable store.
    """

    runs: float = 7 * DAY
    archive: float = 7 * DAY
    dedup: float | None = None


DEFAULT_RETENTION = Retention()


SECRET_ENV_PREFIX = "MESHCTL_SECRET_"


@dataclass(frozen=True, slots=True)
class SecretSources:
    """Where ``{{ secrets.NAME }}`` finds its values (the ``Mesh`` document's ``secrets``).

    ``env``: the prefix of the environment variables (None: none are read); ``file``: a file
    of ``NAME=VALUE`` lines, relative to the mesh directory. A variable wins over the file.
    """

    env: str | None = SECRET_ENV_PREFIX
    file: str | None = None
    loc: Location | None = None


DEFAULT_SECRETS = SecretSources()


DEFAULT_PARTITIONS = 8  # partitions of a worker deployment whose mesh does not say


@dataclass(frozen=True, slots=True)
class DeploymentSettings:
    """``deployment:`` of the Mesh document: how a worker deployment splits its work."""

    partitions: int = DEFAULT_PARTITIONS


DEFAULT_DEPLOYMENT = DeploymentSettings()


@dataclass(frozen=True, slots=True)
class MeshSettings:
    """The optional ``Mesh`` document: settings of the mesh as a whole."""

    name: str
    loc: Location
    allow_modules: tuple[Ref, ...] = ()  # modules outside the mesh directory that handlers may use
    description: str | None = None
    retention: Retention = DEFAULT_RETENTION
    secrets: SecretSources = DEFAULT_SECRETS
    deployment: DeploymentSettings = DEFAULT_DEPLOYMENT


@dataclass(frozen=True, slots=True)
class Mesh:
    """A whole mesh: every element by name, per kind, plus the files it was read from."""

    root: str
    files: tuple[str, ...]
    event_types: Mapping[str, EventType] = field(default_factory=lambda: MappingProxyType({}))
    routes: Mapping[str, Route] = field(default_factory=lambda: MappingProxyType({}))
    services: Mapping[str, Service] = field(default_factory=lambda: MappingProxyType({}))
    orchestrations: Mapping[str, Orchestration] = field(default_factory=lambda: MappingProxyType({}))
    streams: Mapping[str, Stream] = field(default_factory=lambda: MappingProxyType({}))
    policies: Mapping[str, DeliveryPolicy] = field(default_factory=lambda: MappingProxyType({}))
    settings: MeshSettings | None = None
    schedules: Mapping[str, Schedule] = field(default_factory=lambda: MappingProxyType({}))
    checks: Mapping[str, Check] = field(default_factory=lambda: MappingProxyType({}))

    def subscriptions(self) -> list[Subscription]:
        return [sub for svc in self.services.values() for sub in svc.subscriptions]

    @property
    def allowed_modules(self) -> tuple[str, ...]:
        """What `call: {python: ...}` may import from outside the mesh directory."""
        return tuple(ref.name for ref in self.settings.allow_modules) if self.settings is not None else ()

    @property
    def retention(self) -> Retention:
        """What the stores of a run of this mesh keep, and for how long (the `Mesh` document's
        `retention`)."""
        return self.settings.retention if self.settings is not None else DEFAULT_RETENTION

    @property
    def partitions(self) -> int:
        """Into how many partitions a worker deployment of this mesh splits its work."""
        return self.settings.deployment.partitions if self.settings is not None else DEFAULT_PARTITIONS

    @property
    def secrets(self) -> SecretSources:
        """Where `{{ secrets.NAME }}` finds values (the `Mesh` document's `secrets`)."""
        return self.settings.secrets if self.settings is not None else DEFAULT_SECRETS


def resolve_delivery(mesh: Mesh, ref: PolicyRef | None) -> DeliverySpec | None:
    """The delivery spec a ``delivery:``/``retry:`` reference stands for (None if unknown or absent)."""
    if ref is None:
        return None
    if ref.inline is not None:
        return ref.inline
    policy = mesh.policies.get(ref.name or "")
    return policy.spec if policy is not None else None


def action_templates(actions: Iterable[Action]) -> list:
    """The templated fields of actions (TemplateString, TemplateValue or None), in order."""
    out: list = []
    for a in actions:
        if isinstance(a, EmitAction):
            out += [a.data, a.subject, a.source]
        elif isinstance(a, CallAction):
            out += [a.url, a.args, a.headers, a.body]
        elif isinstance(a, SetAction):
            out.append(a.values)
        elif isinstance(a, LogAction):
            out.append(a.message)
    return out


def template_strings(*items) -> Iterator[TemplateString]:
    """Every template in *items* (TemplateString, TemplateValue or None)."""
    for item in items:
        if isinstance(item, TemplateString):
            yield item
        elif isinstance(item, TemplateValue):
            yield from item.strings
