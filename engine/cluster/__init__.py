"""Running a mesh beyond one process: Redis work queues, workers, and the HTTP ingress."""
