"""Prices American vanilla options with QuantLib (finite differences by default: it also gives delta, gamma, theta)."""

from ql_common import black_scholes_process, maturity_date, payoff, price_with_greeks, ql

DEFAULT_ENGINE = "fd"


def _engine(name, process, trade):
    if name == "fd":
        steps = int(trade.get("time_steps", 200))
        return ql.FdBlackScholesVanillaEngine(process, steps, int(trade.get("grid_points", steps)))
    if name == "binomial":
        return ql.BinomialVanillaEngine(process, "crr", int(trade.get("time_steps", 500)))
    if name == "barone-adesi-whaley":
        return ql.BaroneAdesiWhaleyApproximationEngine(process)
    if name == "bjerksund-stensland":
        return ql.BjerksundStenslandApproximationEngine(process)
    raise ValueError(
        "American engine must be 'fd', 'binomial', 'barone-adesi-whaley' or 'bjerksund-stensland', " f"got {name!r}"
    )


def price_american(trade, valuation_date):
    process = black_scholes_process(trade, valuation_date)
    exercise = ql.AmericanExercise(valuation_date, maturity_date(trade, valuation_date))
    option = ql.VanillaOption(payoff(trade), exercise)
    option.setPricingEngine(_engine(trade.get("engine", DEFAULT_ENGINE), process, trade))
    return price_with_greeks(option)
