"""Top layer, one module per CLI use case: checks (validate, schema, the valid mesh every
command starts from), diagrams (render), runs (run, replay, redrive, dead letters), deploy
(worker, status, serve, publish), meshtest (test), scaffold (init), explanations (explain),
the SARIF and JUnit reports, and terminal (diagnostics as a person reads them).

`cli.py` parses arguments and calls these, and reaches the engine through them and the public
API of `engine` only; they may import every layer below."""
