"""The backends the contract suites run on: one name (a scheme of ``engine.storage.BACKENDS``) each.

A new backend is added here (to :data:`BROKERS` too if it has a broker), with how
tests/storage/conftest.py opens it; test_store_contract.py checks that these and
``engine.storage.BACKENDS`` agree.
"""

#: The backends the Store contract runs on.
STORES = ["memory", "sqlite", "redis", "redis+cluster"]
#: The backends the Broker contract runs on.
BROKERS = ["redis", "redis+cluster"]
