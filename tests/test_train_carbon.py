"""Energy, carbon and water from CodeCarbon's offline tracker: present, plausible, consistent with the grid
intensity and the WUE/PUE settings, offline, and without stray files; carried through training,
checkpoints and resumes."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace

import pytest
import torch

from custody.home import Home
from custody.train.carbon import (
    DEFAULT_WUE_L_PER_KWH,
    CarbonConfig,
    CarbonConfigError,
    Emissions,
    track_emissions,
)
from custody.train.loop import TrainConfig, train
from train_support import tiny_gpt, token_data, torch_threads

FAST = CarbonConfig(measure_power_secs=1)


def busy(seconds: float) -> None:
    """Real CPU work: matrix products for `seconds`."""
    a = torch.randn(256, 256)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        a = torch.tanh(a @ a)


def grid_intensity(country: str) -> float:
    from codecarbon.input import DataSource

    return DataSource().get_global_energy_mix_data()[country]["carbon_intensity"]


def test_emissions_are_present_plausible_and_consistent(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be written to the working directory
    started = time.perf_counter()
    with track_emissions(FAST, label="test") as meter:
        busy(2.5)
    wall = time.perf_counter() - started
    e = meter.result
    assert isinstance(e, Emissions)
    assert 2.0 < e.duration_s <= wall + 0.5
    assert e.energy_kwh > 0 and e.energy_kwh == pytest.approx(e.cpu_energy_kwh + e.gpu_energy_kwh + e.ram_energy_kwh)
    watts = e.energy_kwh * 3.6e6 / e.duration_s
    assert 0.1 < watts < 2000, f"{watts} W is not a plausible draw for this process"
    intensity = grid_intensity("USA")
    assert e.emissions_kg_co2e == pytest.approx(e.energy_kwh * intensity / 1000, rel=1e-6)
    assert e.carbon_intensity_g_per_kwh == pytest.approx(intensity, rel=1e-6)
    assert e.water_l == pytest.approx(e.energy_kwh * DEFAULT_WUE_L_PER_KWH)
    assert e.country_iso_code == "USA" and e.pue == 1.0 and e.codecarbon_version and e.tracking_mode == "process"
    assert e.cpu_model  # CodeCarbon names the CPU it estimated for
    assert json.loads(json.dumps(e.as_json())) == e.as_json()  # ledger-ready plain values
    assert list(tmp_path.iterdir()) == []


def test_settings_change_the_figures_as_documented(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = replace(FAST, country_iso_code="FRA", pue=1.5, wue_l_per_kwh=0.5, carbon_intensity_g_per_kwh=100.0)
    with track_emissions(config) as meter:
        busy(1.0)
        middle = meter.snapshot()
    e = meter.result
    assert 0 < middle.energy_kwh <= e.energy_kwh
    assert e.emissions_kg_co2e == pytest.approx(e.energy_kwh * 0.1, rel=1e-6)  # the given intensity
    assert e.water_l == pytest.approx(e.energy_kwh * 0.5) and e.pue == 1.5 and e.country_iso_code == "FRA"
    assert list(tmp_path.iterdir()) == []
    with track_emissions(replace(FAST, output_dir=tmp_path / "cc")):
        busy(0.2)
    assert [p.name for p in (tmp_path / "cc").iterdir()] == ["emissions.csv"]  # only where asked


def test_bad_settings_are_clear_errors() -> None:
    with (
        pytest.raises(CarbonConfigError, match="ISO 3166-1 alpha-3"),
        track_emissions(CarbonConfig(country_iso_code="XX")),
    ):
        pass
    with pytest.raises(CarbonConfigError, match="pue"):
        CarbonConfig(pue=0.9)
    with pytest.raises(CarbonConfigError, match="tracking_mode"):
        CarbonConfig(tracking_mode="cloud")


def test_sessions_add_up() -> None:
    a = Emissions(10, 1.0, 0.5, 0.0, 0.5, 0.4, 1.8, 400, 1.0, 1.8, "USA", None, "cpu", "", 0, "process", "3")
    b = replace(a, duration_s=5, energy_kwh=3.0, emissions_kg_co2e=0.6, water_l=5.4)
    total = a + b
    assert (total.duration_s, total.energy_kwh, total.emissions_kg_co2e, total.water_l) == (15, 4.0, 1.0, 7.2)
    assert total.carbon_intensity_g_per_kwh == pytest.approx(250)


def test_training_reports_emissions_per_checkpoint_and_across_a_resume(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    home = Home.init(tmp_path / "home")
    try:
        data = token_data(home, tmp_path / "data", limit=600)
    finally:
        home.close()
    config = TrainConfig(steps=12, batch_size=8, warmup=2, eval_interval=0, eval_steps=1, checkpoint_interval=6)
    with torch_threads(1):
        first = train(tiny_gpt(), data, replace(config, steps=12), tmp_path / "run", carbon=FAST)
        at_6, at_12 = first.checkpoints
        assert 0 < at_6.emissions["energy_kwh"] <= at_12.emissions["energy_kwh"] <= first.emissions.energy_kwh
        assert first.emissions.water_l == pytest.approx(first.emissions.energy_kwh * DEFAULT_WUE_L_PER_KWH)
        resumed = train(tiny_gpt(), data, config, tmp_path / "run", resume_from=at_6.path, carbon=FAST)
    assert resumed.losses == first.losses
    prior = at_6.emissions["energy_kwh"]
    assert resumed.emissions.energy_kwh > prior  # the resumed session adds to what the checkpoint carried
    assert resumed.emissions.duration_s > at_6.emissions["duration_s"]
    assert not math.isnan(resumed.emissions.emissions_kg_co2e)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "home", "run"]
