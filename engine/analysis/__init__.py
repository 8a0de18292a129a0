"""Layer 2, static analysis: the event-flow graph, the checks over it, feasibility of
patterns, and the validate pipeline that runs them all. Imports `core` and `language`."""
