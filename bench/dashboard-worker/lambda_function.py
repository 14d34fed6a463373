"""Worker of bench/dashboard.ts: takes a few milliseconds, and fails some tasks with a few error types."""
import random
import time


class PricingError(Exception):
    """A model that cannot price an instrument (not retried: the session lists it as non-retryable)."""


class MarketDataError(Exception):
    """Missing market data (retried: a second attempt may succeed)."""


def lambda_handler(event, context):
    i = event["i"]
    time.sleep(random.uniform(0, event.get("ms", 4)) / 1000.0)
    if i % 97 == 13:
        print("pricing instrument %d" % i)
        raise PricingError("no model for instrument %d" % i)
    if i % 251 == 7 and random.random() < 0.7:
        raise MarketDataError("no curve for instrument %d" % i)
    if i % 401 == 3:
        return {"spot": float("nan")}["vol"]
    return {"i": i, "pv": round(random.gauss(100, 5), 4)}
