#!/usr/bin/env python3
"""Signs a webhook payload the way Stripe does, for the integration tests.

Usage: stripe_sign.py SECRET TIMESTAMP < payload   ->   prints a Stripe-Signature header value

The signature is computed here with Python's own hmac module (independently of the server's
code) and then checked with the official `stripe` package's verifier, so a header this script
prints is one Stripe's own library accepts.
"""
import hashlib
import hmac
import sys

import stripe


def main() -> None:
    secret, timestamp = sys.argv[1], sys.argv[2]
    payload = sys.stdin.buffer.read().decode("utf-8")
    signed = f"{timestamp}.{payload}".encode("utf-8")
    v1 = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    header = f"t={timestamp},v1={v1}"
    # Large tolerance: tests also sign deliberately old timestamps, which the server must refuse.
    stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=10**10)
    print(header)


if __name__ == "__main__":
    main()
