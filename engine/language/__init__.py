"""Layer 1, the mesh language: YAML source with locations, the JSON Schema check, the frozen
model built from it, event patterns, conditions, sandboxed templates, and admission (what an
edge accepts). Imports only `core`."""
