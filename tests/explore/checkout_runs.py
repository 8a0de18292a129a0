"""What the tests of the explorer share: the checkout examples, a judge by hand, labels."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.explore.session import Session
from engine.language.loader import load_mesh
from engine.runtime.events import read_events

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (REPO / "workflows").iterdir() if (p / "events.jsonl").exists())
GATEWAY = "service:gateway/payment.requested"


@dataclass(frozen=True)
class Broken:
    check: str
    invariant: str
    message: str

    def as_dict(self) -> dict:
        return {"check": self.check, "invariant": self.invariant, "message": self.message}


def shipped_and_cancelled(history, end, store) -> list:
    """The checkout examples' safety property, by hand: no order both shipped and cancelled."""
    seen: dict[str, set] = {}
    for _, _, event in history:
        if event["type"] in ("order.shipped", "order.cancelled"):
            seen.setdefault(event["data"]["order_id"], set()).add(event["type"])
    return [Broken("checkout", "never", order) for order, types in sorted(seen.items()) if len(types) == 2]


def nothing(history, end, store) -> list:
    return []


def session(name: str, judge=shipped_and_cancelled) -> Session:
    path = REPO / "workflows" / name
    mesh, _ = load_mesh(str(path))
    return Session(mesh, list(read_events(str(path / "events.jsonl"))), judge)


def gateway_attempt(s: Session, order_event: str) -> str:
    """The label of the gateway's first attempt at the payment request of *order_event*."""
    records = s.run(records=True).records
    request = next(r["event"] for r in records if r["kind"] == "emit" and r["type"] == "payment.requested"
                   and r["cause"] == order_event)
    return f"{GATEWAY} <- payment.requested {request} #1"
