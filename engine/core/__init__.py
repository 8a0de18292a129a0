"""Layer 0, plain values: errors and diagnostics, event time and durations, the JSON rule for
event input, event identity and the dead-letter record. Imports nothing else of the engine,
so every other layer may import it."""
