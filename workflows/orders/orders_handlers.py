"""Python handler of the orders mesh (``orders_handlers:charge_payment``).

Called by the ``charge_payment`` step with the run's triggering
``order.placed`` event (a dict) and a context; the returned dict becomes
``steps.charge_payment.output``. A stand-in for a payment provider's API,
deterministic so that sample runs are reproducible:

- a token starting with ``tok_declined`` is declined (non-retryable);
- a token starting with ``tok_flaky`` fails on the first attempt, then succeeds.

It keeps nothing between calls: the attempt number comes with the context, so a resumed
or redriven run sees the same behaviour, and memory does not grow with the orders.
"""

class PaymentDeclined(Exception):
    """The provider refused the payment; retrying will not change that."""


class ProviderUnavailable(Exception):
    """The provider did not answer; worth retrying."""


def charge_payment(event, context):
    """Charge the order's total to its payment instrument."""
    order = event["data"]
    token = order["payment"]["token"]
    attempt = context.attempt
    if token.startswith("tok_declined"):
        raise PaymentDeclined(f"card declined for order {order['order_id']}")
    if token.startswith("tok_flaky") and attempt == 1:
        raise ProviderUnavailable("payment provider timed out")
    return {
        "payment_ref": f"pay-{order['order_id']}",
        "amount": order["total"],
        "currency": order["currency"],
        "attempts": attempt,
    }
