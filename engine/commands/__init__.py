"""Top layer, one module per CLI use case (run, replay and redrive; test; init; explain; the
SARIF and JUnit reports; terminal output of diagnostics). `cli.py` parses arguments and
calls these; they may import every layer below."""
