"""Everyday equivalents for a run's energy, carbon and water (factors and sources in docs/dashboard.md)."""

from __future__ import annotations

from dataclasses import dataclass

# US EPA Greenhouse Gas Equivalencies Calculator ("calculations and references"):
KWH_PER_SMARTPHONE_CHARGE = 0.019  # kWh to charge one smartphone
KG_CO2E_PER_CAR_KM = 0.400 / 1.609344  # a typical passenger car: about 400 g CO2 per mile
# US EPA WaterSense, "Showerheads": an average shower uses 17.2 gallons (8.2 minutes).
LITRES_PER_SHOWER = 17.2 * 3.785411784
LITRES_PER_BOTTLE = 0.5  # a standard small water bottle


@dataclass(frozen=True)
class Equivalent:
    quantity: str
    value: float
    unit: str
    amount: float
    everyday: str

    def label(self) -> str:
        if self.amount >= 100:
            return f"{self.amount:,.0f} {self.everyday}"
        return f"{self.amount:.2g} {self.everyday}" if self.amount < 1 else f"{self.amount:.1f} {self.everyday}"


def equivalents(energy_kwh: float, co2e_kg: float, water_l: float) -> list[Equivalent]:
    return [
        Equivalent("energy", energy_kwh, "kWh", energy_kwh / KWH_PER_SMARTPHONE_CHARGE, "smartphone charges"),
        Equivalent("CO2e", co2e_kg, "kg", co2e_kg / KG_CO2E_PER_CAR_KM, "km driven by an average petrol car"),
        Equivalent("water", water_l, "L", water_l / LITRES_PER_SHOWER, "average showers"),
        Equivalent("water", water_l, "L", water_l / LITRES_PER_BOTTLE, "0.5 L bottles"),
    ]
