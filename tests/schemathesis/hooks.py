"""schemathesis hooks of csc-api/tests/it/schemathesis.rs (loaded through SCHEMATHESIS_HOOKS).

`POST /tsa` takes an RFC 3161 `application/timestamp-query` body: binary, sent as generated,
like `application/octet-stream`. The `application/timestamp-reply` answers have no deserializer
and are not schema-checked (their status and media type still are).
"""

import schemathesis

schemathesis.serializer.alias("application/timestamp-query", "application/octet-stream")
