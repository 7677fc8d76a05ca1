"""Everyday equivalents for a run's energy, carbon and water (factors and sources in docs/dashboard.md).

An equivalent is only worth showing where it gives a sense of scale: "about 8.8e-06 average
showers" says nothing, so amounts under MEANINGFUL of their unit are left out (`meaningful`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# US EPA Greenhouse Gas Equivalencies Calculator ("calculations and references"):
KWH_PER_SMARTPHONE_CHARGE = 0.019  # kWh to charge one smartphone
KG_CO2E_PER_CAR_KM = 0.400 / 1.609344  # a typical passenger car: about 400 g CO2 per mile
# US EPA WaterSense, "Showerheads": an average shower uses 17.2 gallons (8.2 minutes).
LITRES_PER_SHOWER = 17.2 * 3.785411784
LITRES_PER_BOTTLE = 0.5  # a standard small water bottle
MEANINGFUL = 0.01  # below a hundredth of a shower (or charge, km, bottle) a comparison means nothing


@dataclass(frozen=True)
class Equivalent:
    quantity: str
    value: float
    unit: str
    amount: float
    everyday: str  # plural: "average showers"
    one: str  # singular: "average shower"

    @property
    def meaningful(self) -> bool:
        return self.amount >= MEANINGFUL

    def number(self) -> str:
        """`1,234`, `12.5`, `0.017`: two significant digits below 1, never an exponent."""
        amount = self.amount
        if amount >= 100:
            return f"{amount:,.0f}"
        if amount >= 1:
            return f"{amount:.1f}".removesuffix(".0")
        if amount <= 0:
            return "0"
        digits = 1 - math.floor(math.log10(amount))
        return f"{amount:.{digits}f}".rstrip("0").rstrip(".")

    def label(self) -> str:
        number = self.number()
        return f"{number} {self.one if number == '1' else self.everyday}"


def equivalents(energy_kwh: float, co2e_kg: float, water_l: float) -> list[Equivalent]:
    car = "km driven by an average petrol car"
    return [
        Equivalent(
            "energy",
            energy_kwh,
            "kWh",
            energy_kwh / KWH_PER_SMARTPHONE_CHARGE,
            "smartphone charges",
            "smartphone charge",
        ),
        Equivalent("CO2e", co2e_kg, "kg", co2e_kg / KG_CO2E_PER_CAR_KM, car, car),
        Equivalent("water", water_l, "L", water_l / LITRES_PER_SHOWER, "average showers", "average shower"),
        Equivalent("water", water_l, "L", water_l / LITRES_PER_BOTTLE, "0.5 L bottles", "0.5 L bottle"),
    ]


def meaningful(found: list[Equivalent]) -> list[Equivalent]:
    """The equivalents big enough to say something (at least MEANINGFUL of their unit)."""
    return [e for e in found if e.meaningful]
