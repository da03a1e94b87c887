"""Schemathesis hooks for .ci/run.

An Idempotency-Key makes a write apply once per key: the same key with
another body is a 422, by design (the IETF httpapi draft). Schemathesis
draws keys from a small space (the shortest strings first) and would
send one key with many bodies, which a real client never does; so every request whose key is well formed gets a fresh one,
as a client's retry-safe call would. Malformed keys are left alone: the
server must still refuse them (422).
"""

import re
import uuid

import schemathesis

# The document's pattern for the header (openapi.json, IdempotencyKey).
WELL_FORMED = re.compile(
    r'^("[\x20\x21\x23-\x5b\x5d-\x7e]{1,255}"|[\x21\x23-\x7e][\x21-\x7e]{0,254})$'
)


# `before_call` runs before every request of every phase (`map_headers`
# only reaches the data of the fuzzing phase, not the coverage phase's).
@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            key = headers[name]
            if isinstance(key, str) and WELL_FORMED.match(key):
                headers[name] = f'"{uuid.uuid4()}"'
