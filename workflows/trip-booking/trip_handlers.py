"""Python handler of the trip-booking mesh (``trip_handlers:charge_card``).

Called by the ``charge`` step of ``book-flight`` with the child run's trigger event
(``flight.booking.requested``: the input the parent gave) and a context; the returned dict
becomes ``steps.charge.output``. A deterministic stand-in for a card provider:

- a card starting with ``declined`` is refused (``CardDeclined``);
- a card starting with ``acme`` belongs to a provider that is down (``ProviderDown``).

It keeps nothing between calls, so a resumed or redriven run behaves the same.
"""


class CardDeclined(Exception):
    """The card was refused."""


class ProviderDown(Exception):
    """The card provider did not answer."""


def charge_card(event, context):
    """Charge the flight to the trip's card."""
    booking = event["data"]
    card = booking["card"]
    if card.startswith("declined"):
        raise CardDeclined(f"card of trip {booking['trip_id']} declined")
    if card.startswith("acme"):
        raise ProviderDown("acme card provider did not answer")
    return {"payment_ref": f"pay-{booking['trip_id']}", "attempt": context.attempt}
