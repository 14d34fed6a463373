"""Shared QuantLib set-up for the portfolio pricer: the import with a helpful error, dates, and the market process."""

try:
    import QuantLib as ql
except ImportError as error:  # pragma: no cover - depends on the interpreter
    raise ImportError(
        "the portfolio-pricing worker needs QuantLib, which this Python cannot import "
        f"({error}). Fix: bundle the worker so its requirements.txt (QuantLib) is installed "
        "into the zip (htcgrid bundle, cdk deploy), or run it locally with a Python that has "
        "QuantLib (on Debian: `apt-get install quantlib-python`, then --python /usr/bin/python3)."
    ) from error

DAY_COUNT = ql.Actual365Fixed()
CALENDAR = ql.NullCalendar()
OPTION_TYPES = {"call": ql.Option.Call, "put": ql.Option.Put}


def parse_date(value, field):
    """An ISO date (YYYY-MM-DD) or HTC-Grid's "d m yyyy" form, as a QuantLib Date."""
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a date string, got {value!r}")
    parts = value.split()
    try:
        if len(parts) == 3:
            day, month, year = (int(p) for p in parts)
            return ql.Date(day, month, year)
        year, month, day = (int(p) for p in value.split("-"))
        return ql.Date(day, month, year)
    except (ValueError, RuntimeError):
        raise ValueError(f"{field} must be YYYY-MM-DD (or 'd m yyyy'), got {value!r}") from None


def number(trade, field, default=None, minimum=None):
    value = trade.get(field, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{field} must be a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{field} must be at least {minimum}, got {value!r}")
    return float(value)


def maturity_date(trade, valuation_date):
    if "maturity" in trade:
        maturity = parse_date(trade["maturity"], "maturity")
    else:
        years = number(trade, "maturity_years", minimum=0)
        maturity = valuation_date + ql.Period(int(round(years * 365)), ql.Days)
    if maturity <= valuation_date:
        raise ValueError(f"maturity {maturity.ISO()} is not after the valuation date {valuation_date.ISO()}")
    return maturity


def black_scholes_process(trade, valuation_date):
    """A Black-Scholes-Merton process with flat rate, dividend yield and volatility taken from the trade."""
    spot = ql.QuoteHandle(ql.SimpleQuote(number(trade, "spot", minimum=0)))
    rate = ql.YieldTermStructureHandle(ql.FlatForward(valuation_date, number(trade, "rate", 0.0), DAY_COUNT))
    dividends = ql.YieldTermStructureHandle(
        ql.FlatForward(valuation_date, number(trade, "dividend_yield", 0.0), DAY_COUNT)
    )
    volatility = ql.BlackVolTermStructureHandle(
        ql.BlackConstantVol(valuation_date, CALENDAR, number(trade, "volatility", minimum=0), DAY_COUNT)
    )
    return ql.BlackScholesMertonProcess(spot, dividends, rate, volatility)


def payoff(trade):
    kind = str(trade.get("type", "")).lower()
    if kind not in OPTION_TYPES:
        raise ValueError(f"type must be 'call' or 'put', got {trade.get('type')!r}")
    return ql.PlainVanillaPayoff(OPTION_TYPES[kind], number(trade, "strike", minimum=0))


def price_with_greeks(option):
    """NPV and whichever greeks the engine provides (engines that don't provide one raise, and it is left out)."""
    result = {"npv": option.NPV()}
    for greek in ("delta", "gamma", "vega", "theta", "rho"):
        try:
            result[greek] = getattr(option, greek)()
        except RuntimeError:
            pass
    return result
