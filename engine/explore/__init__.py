"""Exploring a mesh's executions: every interleaving and failure a deployment could meet, on the
same input, each run checked against the mesh's declared invariants (`meshctl explore`).

- :mod:`.deviations`: a choice that differs from `meshctl run`'s, and files of them;
- :mod:`.steering`: the chooser that makes a run take given deviations and records the points
  where it could have taken others;
- :mod:`.session`: one run of the mesh under a steering, with its history and state hashes;
- :mod:`.search`: which runs to try, within bounds, pruning what was seen;
- :mod:`.minimize`: the fewest deviations and inputs that still break an invariant;
- :mod:`.counterexample`: the trace file a person reads, draws and replays.
"""
