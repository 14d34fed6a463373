"""Prices European vanilla options with QuantLib."""

from ql_common import black_scholes_process, maturity_date, payoff, price_with_greeks, ql

DEFAULT_ENGINE = "analytic"


def _engine(name, process, trade):
    if name == "analytic":
        return ql.AnalyticEuropeanEngine(process)
    if name == "binomial":
        return ql.BinomialVanillaEngine(process, "crr", int(trade.get("time_steps", 500)))
    if name == "fd":
        steps = int(trade.get("time_steps", 200))
        return ql.FdBlackScholesVanillaEngine(process, steps, int(trade.get("grid_points", steps)))
    raise ValueError(f"European engine must be 'analytic', 'binomial' or 'fd', got {name!r}")


def price_european(trade, valuation_date):
    process = black_scholes_process(trade, valuation_date)
    option = ql.VanillaOption(payoff(trade), ql.EuropeanExercise(maturity_date(trade, valuation_date)))
    option.setPricingEngine(_engine(trade.get("engine", DEFAULT_ENGINE), process, trade))
    return price_with_greeks(option)
