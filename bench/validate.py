"""Validation: ``engine.analysis.validate.check_mesh`` (all of ``meshctl validate``) on generated meshes.

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

A second shape, *re-emit*, is the worst case of loop analysis: N subscriptions on one event
type, each re-emitting it (one service each, ~120 bytes of YAML per subscription), a tenth
of them with a pattern on a constant field, so producers and consumers of one event node
are both N. ``meshctl validate`` runs in a child process for its wall time and peak RSS
(best of 3 by time, at 1,000 and 2,000); the target is near-linear: t(2,000)/t(1,000) ≤ 2.5.
"""
from __future__ import annotations

import os
import random
import tempfile

from .common import Row, best_of, fmt_time, log, run_cli

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
        docs.append(
            f"apiVersion: meshctl/v1\nkind: Route\nmetadata: {{name: r{r:05d}}}\nspec:\n"
            f"  from: [t{a:05d}]\n  match: {{data: {{level: [{{numeric: ['>', {r % 7}]}}]}}}}\n"
            f"  transform:\n    type: t{b:05d}\n    data: {{id: '{{{{ data.id }}}}-r{r}', level: 1}}{loop}\n"
        )
    subscriptions = n - routes
    for s in range(subscriptions // 10):
        subs = []
        for j in range(10):
            a = rng.randrange(types - 1)
            b, loop = _target(rng, a, types)
            subs.append(
                f"    - name: s{j}\n      on: t{a:05d}\n      emits: [t{b:05d}]{loop}\n"
                f"      do: {{emit: {{type: t{b:05d}, data: {{id: '{{{{ data.id }}}}', level: 2}}}}}}"
            )
        docs.append(f"apiVersion: meshctl/v1\nkind: Service\nmetadata: {{name: svc{s:05d}}}\nspec:\n"
                    f"  subscriptions:\n" + "\n".join(subs) + "\n")
    for index in range(0, len(docs), PER_FILE):
        with open(os.path.join(folder, f"mesh-{index // PER_FILE:04d}.yaml"), "w", encoding="utf-8") as fh:
            fh.write("---\n".join(docs[index:index + PER_FILE]))
    return {"types": types, "routes": routes, "subscriptions": subscriptions // 10 * 10,
            "documents": len(docs)}


def generate_reemit(folder: str, n: int) -> None:
    """N subscriptions consuming and re-emitting one type; every tenth filters on `stage`."""
    docs = ["apiVersion: meshctl/v1\nkind: EventType\nmetadata: {name: x}\nspec: {external: true}\n"]
    for i in range(n):
        match = f"\n      match: {{data: {{stage: [s{i % 7}]}}}}" if i % 10 == 0 else ""
        docs.append(
            f"apiVersion: meshctl/v1\nkind: Service\nmetadata: {{name: r{i:05d}}}\nspec:\n  subscriptions:\n"
            f"    - on: x{match}\n      emits: [x]\n"
            f"      do: {{emit: {{type: x, data: {{n: '{{{{ data.n }}}}', stage: s{i % 5}}}}}}}\n"
        )
    with open(os.path.join(folder, "mesh.yaml"), "w", encoding="utf-8") as fh:
        fh.write("---\n".join(docs))


def reemit_rows(quick: bool = False) -> list[Row]:
    """The re-emit shape through ``meshctl validate``: seconds and peak RSS at 1,000 and 2,000."""
    figures = {}
    for n in (1000, 2000):
        with tempfile.TemporaryDirectory(prefix=f"bench-reemit-{n}-") as folder:
            generate_reemit(folder, n)
            size = os.path.getsize(os.path.join(folder, "mesh.yaml"))
            log(f"validate re-emit: N={n:,} ({size // 1024:,} KiB)")
            runs = [run_cli(["validate", folder]) for _ in range(1 if quick else 3)]
            wall, peak, proc = min(runs, key=lambda r: r[0])
            figures[n] = (wall, peak, size, proc.returncode)
    growth = figures[2000][0] / figures[1000][0]
    out = [Row("validate", f"re-emit N={n:,}", fmt_time(wall), "", None, "", "", None,
               f"{size // 1024:,} KiB, peak RSS {peak // 1024:,} MiB, exit {code}")
           for n, (wall, peak, size, code) in figures.items()]
    out.append(Row("validate", "re-emit t(2,000) / t(1,000)", f"{growth:,.2f}×", "N ×2", growth, "growth",
                   "≤ 2.5×", growth <= 2.5, ""))
    return out


def rows(quick: bool = False) -> list[Row]:
    from engine.analysis.validate import check_mesh

    times, outcome = {}, {}
    for n in (1000, 10000):
        with tempfile.TemporaryDirectory(prefix=f"bench-validate-{n}-") as folder:
            sizes = generate(folder, n)
            log(f"validate: N={n:,} ({sizes['documents']:,} documents)")
            seconds, result = best_of(lambda: check_mesh(folder), 1 if quick else (5 if n == 1000 else 3))
            times[n] = seconds
            cycles = sum(d.code in ("event-cycle", "bounded-loop") for d in result.diagnostics)
            outcome[n] = (
                f"{sizes['routes']:,} routes + {sizes['subscriptions']:,} subs: {result.errors:,} errors, "
                f"{result.warnings:,} warnings ({cycles:,} cycle reports)"
            )
    growth = times[10000] / times[1000]
    return [
        Row("validate", "N=1,000", fmt_time(times[1000]), "", None, "", "", None, outcome[1000]),
        Row("validate", "N=10,000", fmt_time(times[10000]), "limit 3 s", None, "", "< 3 s",
            times[10000] < 3, outcome[10000]),
        Row("validate", "t(10,000) / t(1,000)", f"{growth:,.1f}×", "N ×10", growth, "growth", "≤ 12×",
            growth <= 12, ""),
        *reemit_rows(quick),
    ]


if __name__ == "__main__":
    import sys

    from .common import table

    print(table(rows(quick="--quick" in sys.argv)))
