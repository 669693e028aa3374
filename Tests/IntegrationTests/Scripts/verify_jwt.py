#!/usr/bin/env python3
"""Verifies an authd JWT offline with PyJWT (pip install pyjwt cryptography), an implementation
independent of authd's: reads the JWKS and the token from argv, prints the claims as JSON or
exits 1 with the reason."""
import json, sys
import jwt

jwks, token = json.loads(sys.argv[1]), sys.argv[2]
kid = jwt.get_unverified_header(token)["kid"]
key = next((k for k in jwks["keys"] if k["kid"] == kid), None)
if key is None:
    print("unknown kid", file=sys.stderr)
    sys.exit(1)
try:
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["EdDSA"])
except jwt.PyJWTError as error:
    print(type(error).__name__, file=sys.stderr)
    sys.exit(1)
print(json.dumps(claims, sort_keys=True))
