"""The interpreter: runs a loaded mesh on events (see interpreter.Runtime)."""
