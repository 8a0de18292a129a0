"""Generated input for the order-fulfilment example (workflows/orders), shared by the benchmarks.

``generate(path, n)`` writes ``n`` ``order.placed`` events, one second apart from
2026-01-01T00:00:00Z, seeded: about 4 % are declined by the payment stand-in
(``tok_declined…``: the saga compensates), 4 % fail once and are retried (``tok_flaky…``),
3 % are free samples (total 0: the trigger's ``when`` filters them), the rest complete.
"""
from __future__ import annotations

import json
import random

from .common import REPO
from .e2e import BASE, _stamp

ORDERS = str(REPO / "workflows" / "orders")
CITIES = [("Berlin", "DE", "10969"), ("Lyon", "FR", "69003"), ("Leeds", "GB", "LS6 2AB"),
          ("Porto", "PT", "4000-123")]
SKUS = [("MUG-BLK", 12.5), ("TEE-M-NVY", 24.0), ("HEADPH-BT", 149.0), ("LAPTOP-14", 1299.0),
        ("SLEEVE-14", 39.9)]


def order(i: int, rng: random.Random) -> dict:
    """The i-th generated order (1-based)."""
    lines = [{"sku": sku, "qty": rng.randint(1, 3), "unit_price": price} for sku,
             price in rng.sample(SKUS, rng.randint(1, 3))]
    draw = rng.random()
    token = "tok_declined_%x" % i if draw < 0.04 else "tok_flaky_%x" % i if draw < 0.08 else "tok_%x" % i
    total = 0.0 if draw > 0.97 else round(sum(line["qty"] * line["unit_price"] for line in lines), 2)
    city, country, postcode = rng.choice(CITIES)
    return {"specversion": "1.0", "id": f"chk-{i:07d}", "source": "/shop/checkout", "type": "order.placed",
            "time": _stamp(BASE + i), "subject": f"ord-{i:07d}",
            "data": {"order_id": f"ord-{i:07d}", "customer_id": f"cus-{rng.randrange(5000):04d}",
                     "email": f"c{i}@example.org", "items": lines, "total": total,
                     "currency": rng.choice(["EUR", "USD", "GBP"]), "express": rng.random() < 0.2,
                     "payment": {"method": "card", "token": token},
                     "shipping": {"name": f"Customer {i}", "street": "Main St. 1", "city": city,
                                  "postcode": postcode, "country": country}}}


def generate(path: str, n: int, seed: int = 7) -> int:
    """Write ``n`` generated orders to ``path`` (JSON Lines); returns ``n``."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(1, n + 1):
            fh.write(json.dumps(order(i, rng)) + "\n")
    return n


if __name__ == "__main__":
    import sys

    print(generate(sys.argv[1], int(sys.argv[2])))
