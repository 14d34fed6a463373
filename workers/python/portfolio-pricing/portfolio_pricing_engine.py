"""Portfolio pricing worker: prices a small portfolio of European and American vanilla options with QuantLib.

Handler: portfolio_pricing_engine.lambda_handler

event = {
  "valuation_date": "2024-05-15",            # optional, default: today
  "portfolio": [
    {"id": "eu-call", "type": "call", "exercise": "european", "strike": 100, "spot": 100, "volatility": 0.2,
     "rate": 0.03, "dividend_yield": 0.0, "maturity": "2025-05-15", "quantity": 10, "engine": "analytic"},
    ...
  ]
}

A trade gives `maturity` (YYYY-MM-DD) or `maturity_years`. HTC-Grid's trade format ({"tradeType": "option",
"exercise": "European", "engineName": ..., "tradeParameters": {...}}) is accepted too.

Returns {"valuation_date", "results": [{"id", "npv", "delta", ...} | {"id", "error"}], "portfolio_value", "priced",
"failed"}. A trade that cannot be priced gets an "error" entry (retrying would not help); an event without a
portfolio raises ValueError.
"""

from american_options import price_american
from european_options import price_european
from ql_common import ql, parse_date

PRICERS = {"european": price_european, "american": price_american}

# HTC-Grid engine names → this worker's engine names.
HTCGRID_ENGINES = {
    "analyticeuropean": "analytic",
    "binomialvanilla": "binomial",
    "fdblackscholesvanilla": "fd",
    "baroneadesiwhaleyapproximation": "barone-adesi-whaley",
    "bjerksundstenslandapproximation": "bjerksund-stensland",
}


def lambda_handler(event, context):
    if not isinstance(event, dict) or not isinstance(event.get("portfolio"), list):
        raise ValueError('event must be {"portfolio": [trade, ...]} (see portfolio_pricing_engine.py)')
    default_date = event.get("valuation_date")
    results = []
    value = 0.0
    for index, raw in enumerate(event["portfolio"]):
        trade = from_htcgrid(raw) if isinstance(raw, dict) and "tradeParameters" in raw else raw
        trade_id = trade.get("id", index) if isinstance(trade, dict) else index
        try:
            priced = price_trade(trade, default_date)
        except (ValueError, RuntimeError, TypeError) as error:
            results.append({"id": trade_id, "error": f"{type(error).__name__}: {error}"})
            continue
        value += priced["npv"] * float(trade.get("quantity", 1))
        results.append({"id": trade_id, **priced})
    failed = sum(1 for r in results if "error" in r)
    return {
        "valuation_date": default_date,
        "results": results,
        "portfolio_value": value,
        "priced": len(results) - failed,
        "failed": failed,
    }


def price_trade(trade, default_date):
    if not isinstance(trade, dict):
        raise ValueError(f"a trade must be an object, got {trade!r}")
    date_text = trade.get("valuation_date", default_date)
    valuation_date = parse_date(date_text, "valuation_date") if date_text is not None else ql.Date.todaysDate()
    # QuantLib's evaluation date is process-wide: set it for every trade, as the worker process lives on.
    ql.Settings.instance().evaluationDate = valuation_date
    exercise = str(trade.get("exercise", "european")).lower()
    if exercise not in PRICERS:
        raise ValueError(f"exercise must be 'european' or 'american', got {trade.get('exercise')!r}")
    return PRICERS[exercise](trade, valuation_date)


def from_htcgrid(trade):
    """Translates an HTC-Grid trade (European calls and American puts, per its examples) to this worker's form."""
    params = trade.get("tradeParameters", {})
    exercise = str(trade.get("exercise", "European")).lower()
    engine = str(trade.get("engineName", "")).replace("Engine", "").lower()
    engine_parameters = trade.get("engineParameters", {}) or {}
    converted = {
        "id": trade.get("id"),
        "type": trade.get("optionType", "call" if exercise == "european" else "put"),
        "exercise": exercise,
        "strike": params.get("payoff"),
        "spot": params.get("underlying"),
        "volatility": params.get("volatility"),
        "rate": params.get("riskFreeRate", 0.0),
        "dividend_yield": params.get("dividendYield", 0.0),
        "maturity": params.get("exerciseDate"),
        "valuation_date": params.get("evaluationDate"),
        "engine": HTCGRID_ENGINES.get(engine, engine or None),
    }
    if "timeSteps" in engine_parameters:
        converted["time_steps"] = engine_parameters["timeSteps"]
    if "gridPoints" in engine_parameters:
        converted["grid_points"] = engine_parameters["gridPoints"]
    return {k: v for k, v in converted.items() if v is not None}
