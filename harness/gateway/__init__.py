"""The signed-token gateway: the only way to reach the fleet's model servers from off the network.

Modules, one job each:

- ``tokens``: mint and verify signed tokens (PyJWT, RFC 8725 rules); pure.
- ``keys``: read and write key files (mode 0600), the I/O behind ``tokens``.
- ``paths``: normalise a request path and match it, exactly, against the route registry; pure.
- ``ratelimit``: per-subject token buckets; pure.
- ``revocation``: the jti deny-list file, re-read while running.
- ``settings``: the gateway's configuration, validated.
- ``audit``: one JSON line per request, never the token.
- ``proxy``: the ASGI app (Starlette primitives) that checks, limits and streams requests to the upstreams.
- ``server``: uvicorn with a header-read timeout, in the foreground or a background thread.
"""
