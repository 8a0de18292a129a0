"""The warehouse of docs/examples/invariants: each SKU starts with 5 units in stock."""

STOCK = 5


def reserve(event, context):
    data = event["data"]
    order = {"order_id": data["order_id"], "sku": data["sku"], "qty": data["qty"]}
    on_hand = context.state.get("on_hand", STOCK)
    if data["qty"] > on_hand:
        context.emit("order.cancelled", order)
        return
    context.state["on_hand"] = on_hand - data["qty"]
    context.emit("order.shipped", order)
