"""Validation: ``engine.check.check_mesh`` (all of ``meshctl validate``) on generated meshes.

A mesh of size N has N/2 routes and N/2 subscriptions (in N/20 services of 10), over N/10
event types with a small JSON Schema each, written as YAML files of at most 250 documents.
Routes and subscriptions mostly send events "forward" (to a type with a higher number, so
the flow is a DAG), but 2 % of them send one back a few types, which closes cycles: half of
those are declared bounded (``loop: {max_hops: 3}``, a warning), half are not (an error).
Routes carry an EventBridge pattern on a declared field and a templated transform, so the
pattern and template checks have work to do. The figure is the time of one
``check_mesh(path)`` (load, schema checks, flow graph, analysis), the best of 5 at 1,000 and
of 3 at 10,000 (on a shared machine the best of several is the least disturbed, and the
growth ratio divides by the small figure); the targets are < 3 s at 10,000 and
t(10,000)/t(1,000) ≤ 12.
"""
from __future__ import annotations

import os
import random
import tempfile

from .common import Row, best_of, fmt_time, log

PER_FILE = 250


def _type(i: int, external: bool) -> str:
    return (f"apiVersion: meshctl/v1\nkind: EventType\nmetadata: {{name: t{i:05d}}}\nspec:\n"
            f"  external: {'true' if external else 'false'}\n"
            f"  schema:\n    type: object\n    required: [id]\n"
            f"    properties:\n      id: {{type: string}}\n      level: {{type: integer}}\n")


def _target(rng: random.Random, a: int, types: int) -> tuple[int, str]:
    """The type an element consuming ``a`` emits, and its loop declaration (cycles: 2 %)."""
    if rng.random() < 0.02 and a > 3:
        back = rng.randrange(max(0, a - 5), a)
        return back, ("\n      loop: {max_hops: 3}" if rng.random() < 0.5 else "")
    return min(types - 1, a + rng.randrange(1, 6)), ""


def generate(folder: str, n: int, seed: int = 5) -> dict[str, int]:
    rng = random.Random(seed)
    types = max(10, n // 10)
    docs = [_type(i, i < max(1, types // 10)) for i in range(types)]
    routes = n // 2
    for r in range(routes):
        a = rng.randrange(types - 1)
        b, loop = _target(rng, a, types)
        loop = loop.replace("\n      ", "\n  ")
        docs.append(f"apiVersion: meshctl/v1\nkind: Route\nmetadata: {{name: r{r:05d}}}\nspec:\n"
                    f"  from: [t{a:05d}]\n  match: {{data: {{level: [{{numeric: ['>', {r % 7}]}}]}}}}\n"
                    f"  transform:\n    type: t{b:05d}\n    data: {{id: '{{{{ data.id }}}}-r{r}', level: 1}}{loop}\n")
    subscriptions = n - routes
    for s in range(subscriptions // 10):
        subs = []
        for j in range(10):
            a = rng.randrange(types - 1)
            b, loop = _target(rng, a, types)
            subs.append(f"    - name: s{j}\n      on: t{a:05d}\n      emits: [t{b:05d}]{loop}\n"
                        f"      do: {{emit: {{type: t{b:05d}, data: {{id: '{{{{ data.id }}}}', level: 2}}}}}}")
        docs.append(f"apiVersion: meshctl/v1\nkind: Service\nmetadata: {{name: svc{s:05d}}}\nspec:\n"
                    f"  subscriptions:\n" + "\n".join(subs) + "\n")
    for index in range(0, len(docs), PER_FILE):
        with open(os.path.join(folder, f"mesh-{index // PER_FILE:04d}.yaml"), "w", encoding="utf-8") as fh:
            fh.write("---\n".join(docs[index:index + PER_FILE]))
    return {"types": types, "routes": routes, "subscriptions": subscriptions // 10 * 10, "documents": len(docs)}


def rows(quick: bool = False) -> list[Row]:
    from engine.check import check_mesh

    times, outcome = {}, {}
    for n in (1000, 10000):
        with tempfile.TemporaryDirectory(prefix=f"bench-validate-{n}-") as folder:
            sizes = generate(folder, n)
            log(f"validate: N={n:,} ({sizes['documents']:,} documents)")
            seconds, result = best_of(lambda: check_mesh(folder), 1 if quick else (5 if n == 1000 else 3))
            times[n] = seconds
            cycles = sum(d.code in ("event-cycle", "bounded-loop") for d in result.diagnostics)
            outcome[n] = (f"{sizes['routes']:,} routes + {sizes['subscriptions']:,} subs: {result.errors:,} errors, "
                          f"{result.warnings:,} warnings ({cycles:,} cycle reports)")
    growth = times[10000] / times[1000]
    return [
        Row("validate", "N=1,000", fmt_time(times[1000]), "", None, "", "", None, outcome[1000]),
        Row("validate", "N=10,000", fmt_time(times[10000]), "limit 3 s", None, "", "< 3 s",
            times[10000] < 3, outcome[10000]),
        Row("validate", "t(10,000) / t(1,000)", f"{growth:,.1f}×", "N ×10", growth, "growth", "≤ 12×", growth <= 12, ""),
    ]


if __name__ == "__main__":
    import sys

    from .common import table

    print(table(rows(quick="--quick" in sys.argv)))
