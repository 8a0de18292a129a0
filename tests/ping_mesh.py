"""The smallest valid mesh: an external `ping` and a service that logs it (tests share it)."""

PING_MESH = """\
apiVersion: meshctl/v1
kind: EventType
metadata: {name: ping}
spec: {external: true}
---
apiVersion: meshctl/v1
kind: Service
metadata: {name: ponger}
spec:
  subscriptions:
    - on: ping
      do: {log: "got {{ event.id }}"}
"""
