"""The label handler of the versions example (``labels:label``).

LABEL_FORMAT is what docs/versions.md changes between two deployments of this mesh.
"""

LABEL_FORMAT = "v1/{parcel_id}"


def label(event, context):
    """A label for the parcel of the run's triggering event."""
    return {"label": LABEL_FORMAT.format(**event["data"])}
