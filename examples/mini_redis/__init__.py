"""mini-redis: a small Redis server (and client) on trio-runtime, after Tokio's mini-redis.

``resp`` is the protocol as a sans-IO codec, ``db`` the keyspace with expiry and pub/sub,
``commands`` the command table, ``server`` the server (run it as a script) and ``client`` a
small async client.
"""
