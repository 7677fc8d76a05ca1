"""Energy, carbon and water of a piece of work, measured by CodeCarbon's offline tracker.

`track_emissions(config)` wraps anything (a training run, a check, a stage) and leaves an
`Emissions` record on the meter it yields. It never touches the network (the offline tracker takes
the grid's carbon intensity from the country tables CodeCarbon ships) and writes no files unless
`output_dir` is set.

Energy is what CodeCarbon measures (RAPL, NVML) or estimates (a TDP table, or 4 W per thread
when the CPU is unknown, as on most VMs) for this process, multiplied by the PUE:

    energy_kwh = measured_kwh × PUE
    kg CO2e    = energy_kwh × grid carbon intensity (the country's annual mean, or a given value)
    water_l    = energy_kwh × WUE                  (= measured × PUE × WUE, as CodeCarbon 3 does)

Defaults, and why:
  PUE 1.0: report the energy the hardware drew; set the facility's PUE to include cooling and
    power distribution (the US fleet average was about 1.6 in 2014, Shehabi et al. 2016).
  WUE 1.8 L/kWh: on-site (cooling) water consumed per kWh by an average US data centre,
    A. Shehabi et al., "United States Data Center Energy Usage Report", Lawrence Berkeley
    National Laboratory, LBNL-1005775, June 2016. It excludes the water used to generate the
    electricity (about 7.6 L/kWh on the US grid in the same report), so it is a lower bound.
  Country USA: the grid the WUE figure describes; set your own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from custody.emissions import NOT_MEASURED

DEFAULT_COUNTRY = "USA"
DEFAULT_PUE = 1.0
TRACKER = "codecarbon OfflineEmissionsTracker"  # how a ledger entry names what measured it
DEFAULT_WUE_L_PER_KWH = 1.8  # Shehabi et al. 2016, LBNL-1005775: on-site water, average US data centre


class CarbonConfigError(ValueError):
    pass


@dataclass(frozen=True)
class CarbonConfig:
    country_iso_code: str = DEFAULT_COUNTRY  # ISO 3166-1 alpha-3, as CodeCarbon's tables
    region: str | None = None  # a US state or Canadian province, for a finer grid mix
    pue: float = DEFAULT_PUE
    wue_l_per_kwh: float = DEFAULT_WUE_L_PER_KWH
    carbon_intensity_g_per_kwh: float | None = None  # override the country's mean (e.g. a supplier's figure)
    measure_power_secs: float = 15.0
    tracking_mode: str = "process"  # this process's share of the machine; "machine" for all of it
    gpu_ids: tuple[int, ...] | None = None  # None: every visible GPU
    output_dir: Path | None = None  # where CodeCarbon may write its CSV; None: nowhere

    def __post_init__(self) -> None:
        if self.pue < 1.0:
            raise CarbonConfigError(f"pue must be at least 1.0 (facility energy / IT energy), not {self.pue}")
        if self.wue_l_per_kwh < 0:
            raise CarbonConfigError(f"wue_l_per_kwh must not be negative, not {self.wue_l_per_kwh}")
        if self.carbon_intensity_g_per_kwh is not None and self.carbon_intensity_g_per_kwh < 0:
            raise CarbonConfigError("carbon_intensity_g_per_kwh must not be negative")
        if self.tracking_mode not in ("process", "machine"):
            raise CarbonConfigError(f"tracking_mode must be 'process' or 'machine', not {self.tracking_mode!r}")
        if self.measure_power_secs <= 0:
            raise CarbonConfigError("measure_power_secs must be positive")

    def validate_country(self) -> None:
        from codecarbon.input import DataSource

        known = DataSource().get_global_energy_mix_data()
        if self.country_iso_code not in known:
            raise CarbonConfigError(
                f"country_iso_code {self.country_iso_code!r} is not in CodeCarbon's grid tables "
                "(use an ISO 3166-1 alpha-3 code such as USA, FRA, DEU)"
            )


@dataclass(frozen=True)
class Emissions:
    duration_s: float
    energy_kwh: float  # PUE included
    cpu_energy_kwh: float
    gpu_energy_kwh: float
    ram_energy_kwh: float
    emissions_kg_co2e: float
    water_l: float
    carbon_intensity_g_per_kwh: float
    pue: float
    wue_l_per_kwh: float
    country_iso_code: str
    region: str | None
    cpu_model: str
    gpu_model: str
    gpu_count: int
    tracking_mode: str
    codecarbon_version: str
    processes: int = 1  # summed over this many processes (data-parallel ranks)

    def as_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Emissions:
        return cls(**data)

    def __add__(self, other: Emissions) -> Emissions:
        """Two measurements of one run (ranks side by side, or sessions of a resumed run) added up."""
        energy = self.energy_kwh + other.energy_kwh
        emissions = self.emissions_kg_co2e + other.emissions_kg_co2e
        return replace(
            other,
            duration_s=self.duration_s + other.duration_s,
            energy_kwh=energy,
            cpu_energy_kwh=self.cpu_energy_kwh + other.cpu_energy_kwh,
            gpu_energy_kwh=self.gpu_energy_kwh + other.gpu_energy_kwh,
            ram_energy_kwh=self.ram_energy_kwh + other.ram_energy_kwh,
            emissions_kg_co2e=emissions,
            water_l=self.water_l + other.water_l,
            carbon_intensity_g_per_kwh=emissions * 1000 / energy if energy else other.carbon_intensity_g_per_kwh,
        )

    def summary(self) -> str:
        return (
            f"{self.energy_kwh * 1000:.3f} Wh, {self.emissions_kg_co2e * 1000:.3f} g CO2e, "
            f"{self.water_l:.4f} L water in {self.duration_s:.1f} s"
        )

    def ledger_body(self, tracker: str = TRACKER) -> dict:
        """The `emissions` body of a ledger entry (custody.emissions.Emissions)."""
        return {
            "duration_s": round(self.duration_s, 3),
            "energy_kwh": self.energy_kwh,
            "emissions_kg_co2e": self.emissions_kg_co2e,
            "water_l": self.water_l,
            "country_iso_code": self.country_iso_code,
            "pue": self.pue,
            "wue_l_per_kwh": self.wue_l_per_kwh,
            "tracker": f"{tracker} (codecarbon {self.codecarbon_version})",
        }


def not_measured_body(config: CarbonConfig, why: str) -> dict:
    """An `emissions` body that says nothing was measured, and why (zeros, never a guess)."""
    return {
        "duration_s": 0.0,
        "energy_kwh": 0.0,
        "emissions_kg_co2e": 0.0,
        "water_l": 0.0,
        "country_iso_code": config.country_iso_code,
        "pue": config.pue,
        "wue_l_per_kwh": config.wue_l_per_kwh,
        "tracker": f"{NOT_MEASURED}: {why}",
    }


_PARTIAL = "custody_emissions"  # the attribute a failed block's exception carries its measurement in


def note_measured(exc: BaseException, emissions: Emissions | None) -> None:
    """Attach what was measured up to a failure to the exception that ended the work (the outermost
    meter that saw it has the last word: it measured the longest)."""
    if emissions is not None:
        with suppress(AttributeError, TypeError):  # an exception type that refuses attributes
            setattr(exc, _PARTIAL, emissions)


def measured_before(exc: BaseException) -> Emissions | None:
    """What the meter around the failed work measured up to the failure, or None if none ran."""
    found = getattr(exc, _PARTIAL, None)
    return found if isinstance(found, Emissions) else None


class EmissionsMeter:
    """A running CodeCarbon tracker; `snapshot()` gives the totals so far, `stop()` the final ones."""

    def __init__(self, config: CarbonConfig | None = None, label: str = "custody") -> None:
        import codecarbon
        from codecarbon import OfflineEmissionsTracker
        from codecarbon.external.logger import set_logger_level

        from custody.train.cpu_info import remember_cpu_info

        remember_cpu_info()  # CodeCarbon's CPU lookup costs ~1.1 s per process otherwise
        self.config = config or CarbonConfig()
        self.config.validate_country()
        set_logger_level("error")  # before construction: its init logs at INFO otherwise
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        self._version = codecarbon.__version__
        out = self.config.output_dir
        kwargs: dict = {}
        if self.config.carbon_intensity_g_per_kwh is not None:
            kwargs["force_carbon_intensity_g_co2e_kwh"] = self.config.carbon_intensity_g_per_kwh
        if self.config.gpu_ids is not None:
            kwargs["gpu_ids"] = list(self.config.gpu_ids)
        if self.config.region:
            kwargs["region"] = self.config.region
        if out is not None:
            Path(out).mkdir(parents=True, exist_ok=True)
            kwargs.update(output_methods=[codecarbon.OutputMethod.CSV], output_dir=str(out))
        else:
            kwargs["output_methods"] = []
        self._tracker = OfflineEmissionsTracker(
            country_iso_code=self.config.country_iso_code,
            project_name=label,
            measure_power_secs=self.config.measure_power_secs,
            tracking_mode=self.config.tracking_mode,
            pue=self.config.pue,
            wue=self.config.wue_l_per_kwh,
            log_level="error",
            allow_multiple_runs=True,  # no lock file; checks and stages may be tracked inside a run
            **kwargs,
        )
        self.result: Emissions | None = None
        self._started = False

    def start(self, every_second: bool = True) -> EmissionsMeter:
        """Start measuring. `every_second=False` stops CodeCarbon's 1 Hz power sampling thread when
        no GPU is tracked: for the CPU it only averages what each measurement computes anyway (the
        process's CPU time, or the machine's load, over the whole interval since the last one; RAPL
        counts energy itself), and waking once a second cost a busy Python thread about 1.3% of
        its CPU time in a quick experiment (docs/benchmarks.md, "Energy measurement overhead"). GPUs keep it."""
        self._start = time.perf_counter()
        self._tracker.start()
        self._started = True
        if not every_second and not self._tracker._conf.get("gpu_count"):
            monitor = getattr(self._tracker, "_scheduler_monitor_power", None)  # CodeCarbon 3's name
            if monitor is not None:
                monitor.stop()
        return self

    def snapshot(self) -> Emissions:
        """Totals since start, without stopping (CodeCarbon's flush measures what is stale)."""
        self._tracker.flush()
        # The totals object has no public accessor before stop(); this is what flush() itself builds.
        return self._convert(self._tracker._prepare_emissions_data())

    def stop(self) -> Emissions:
        if self.result is None:
            self._tracker.stop()
            data = self._tracker.final_emissions_data
            if data is None:
                raise RuntimeError("CodeCarbon returned no measurement (see its log)")
            self.result = self._convert(data)
        return self.result

    def _convert(self, data) -> Emissions:
        energy = float(data.energy_consumed)
        emissions = float(data.emissions)
        intensity = self.config.carbon_intensity_g_per_kwh
        if intensity is None:
            intensity = emissions * 1000 / energy if energy > 0 else 0.0
        return Emissions(
            duration_s=float(data.duration),
            energy_kwh=energy,
            cpu_energy_kwh=float(data.cpu_energy),
            gpu_energy_kwh=float(data.gpu_energy),
            ram_energy_kwh=float(data.ram_energy),
            emissions_kg_co2e=emissions,
            water_l=energy * self.config.wue_l_per_kwh,
            carbon_intensity_g_per_kwh=intensity,
            pue=self.config.pue,
            wue_l_per_kwh=self.config.wue_l_per_kwh,
            country_iso_code=data.country_iso_code or self.config.country_iso_code,
            region=data.region or self.config.region,
            cpu_model=data.cpu_model or "",
            gpu_model=data.gpu_model or "",
            gpu_count=int(data.gpu_count or 0),
            tracking_mode=data.tracking_mode,
            codecarbon_version=self._version,
        )


@contextmanager
def track_emissions(config: CarbonConfig | None = None, label: str = "custody") -> Iterator[EmissionsMeter]:
    """Measure the block; afterwards `meter.result` holds its Emissions (also when the block raised,
    when the exception carries them too: `measured_before(exc)`)."""
    meter = EmissionsMeter(config, label).start()
    try:
        yield meter
    except BaseException as exc:
        note_measured(exc, meter.stop())
        raise
    finally:
        meter.stop()


class UnitMeter:
    """One tracker around one unit of work (a check, a stage) that never fails the work: if
    CodeCarbon cannot start or stop, `body()` says "not measured" and why. `config=None`: off.

    The tracker starts before the work, in this thread: CodeCarbon's start runs subprocesses
    (lscpu; py-cpuinfo on the first tracker on a machine, about 1.1 s, then kept: cpu_info.py),
    and a thread doing so while the work forks its own worker processes (the pii scanner's pool)
    can hang both, since a forked worker keeps the subprocess's pipes open. Later trackers in a
    process start in about 10 ms."""

    def __init__(self, config: CarbonConfig | None, label: str) -> None:
        self.config, self.label = config, label
        self.meter: EmissionsMeter | None = None
        self.problem: str | None = None
        self.result: Emissions | None = None

    def __enter__(self) -> UnitMeter:
        return self.start()

    def start(self) -> UnitMeter:
        """Start the tracker (once: `with` after `start()` does not start another)."""
        if self.config is not None and self.meter is None and self.problem is None:
            try:
                self.meter = EmissionsMeter(self.config, self.label).start(every_second=False)
            except Exception as exc:  # the work goes on unmeasured, and says so
                self.problem = f"CodeCarbon did not start ({type(exc).__name__}: {exc})"[:300]
        return self

    def __exit__(self, kind, exc, tb) -> None:
        result = self.finish()
        if exc is not None:
            note_measured(exc, result)

    def finish(self) -> Emissions | None:
        """Stop measuring (again: the same result) where the unit's recording begins."""
        if self.meter is None or self.result is not None:
            return self.result
        try:
            self.result = self.meter.stop()
        except Exception as error:
            self.problem = f"CodeCarbon did not stop ({type(error).__name__}: {error})"[:300]
            self.meter = None
        return self.result

    @property
    def on(self) -> bool:
        return self.config is not None

    def body(self) -> dict | None:
        """The `emissions` body for the unit's entry; None when measuring was off."""
        if self.config is None:
            return None
        if self.result is None:
            return not_measured_body(self.config, self.problem or "the tracker returned nothing")
        return self.result.ledger_body()
