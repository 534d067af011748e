#!/usr/bin/env python3
"""Loads energy-star's result files with the upstream tools' own readers.

optimum-benchmark's classes (installed from PyPI by the caller) on `benchmark_report.json`,
`benchmark.json` and `benchmark_config.json` of an `optimum`-backend results folder; and, for
every ai_energy_benchmarks report, the fields AI Energy Score's `summarize_gpu_wh.py` and
`results_aggregator.py` read, with their types (checks of our own: those scripts are not on
PyPI, and their code is not ours to copy; see docs/formats.md).

usage: upstream-readers.py RESULTS_DIR [RESULTS_DIR ...]   (exit 1 when any reader fails)
"""
import json
import sys
import traceback
from pathlib import Path

failures = []


def check(what, fn):
    try:
        fn()
        print(f"loads   {what}")
    except Exception as e:  # noqa: BLE001 - every failure is reported, then the exit code says it
        failures.append(what)
        print(f"RAISES  {what}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        traceback.print_exc(limit=3, file=sys.stdout)


def optimum(dir_: Path):
    from optimum_benchmark import Benchmark, BenchmarkConfig, BenchmarkReport
    from optimum_benchmark.backends.pytorch.config import PyTorchConfig
    from optimum_benchmark.launchers.process.config import ProcessConfig
    from optimum_benchmark.scenarios.energy_star.config import EnergyStarConfig

    report_path = str(dir_ / "benchmark_report.json")

    def report():
        r = BenchmarkReport.from_json(report_path)
        r.to_plain_text()
        r.to_markdown_text()
        r.log()
        r.to_dataframe()
        BenchmarkReport.aggregate_across_processes([r, BenchmarkReport.from_json(report_path)])

    check(f"{dir_.name}: BenchmarkReport.from_json + to_plain_text, to_markdown_text, log, to_dataframe, aggregate_across_processes", report)
    check(f"{dir_.name}: Benchmark.from_json(benchmark.json) + to_dataframe", lambda: Benchmark.from_json(str(dir_ / "benchmark.json")).to_dataframe())
    check(f"{dir_.name}: BenchmarkConfig.from_json(benchmark_config.json)", lambda: BenchmarkConfig.from_json(str(dir_ / "benchmark_config.json")))
    cfg = json.loads((dir_ / "benchmark_config.json").read_text())

    def typed(cls, section):
        # The typed configs take the keys their dataclass names; upstream's own JSON carries
        # derived fields too (`name`, `_target_`, ...), so compare against the dataclass's fields.
        import dataclasses

        fields = {f.name for f in dataclasses.fields(cls)}
        data = dict(cfg[section])
        unknown = sorted(set(data) - fields)
        if unknown:
            raise KeyError(f"{section} keys {cls.__name__} does not know: {unknown}")
        cls(**{k: v for k, v in data.items() if k in fields and k not in ("name", "_target_", "version")})

    def environment():
        # The machine keys say what optimum-benchmark itself records on this machine (energy-star
        # has no Python, so python_version stays null; its own keys are listed in docs/formats.md).
        from optimum_benchmark.system_utils import get_system_info

        upstream = get_system_info()
        upstream.pop("python_version")
        ours = cfg["environment"]
        differ = {k: (ours.get(k, "<absent>"), v) for k, v in upstream.items() if ours.get(k, "<absent>") != v}
        gpu_keys = {"gpu", "gpu_count", "gpu_vram_mb"}
        extra = sorted(k for k in gpu_keys & set(ours) if k not in upstream)
        if differ or extra:
            raise ValueError(f"environment differs from get_system_info() (ours, upstream): {differ}; GPU keys upstream leaves out: {extra}")

    check(f"{dir_.name}: environment = optimum_benchmark.system_utils.get_system_info() on this machine", environment)
    check(f"{dir_.name}: EnergyStarConfig(scenario)", lambda: typed(EnergyStarConfig, "scenario"))
    check(f"{dir_.name}: PyTorchConfig(backend)", lambda: typed(PyTorchConfig, "backend"))
    check(f"{dir_.name}: ProcessConfig(launcher)", lambda: typed(ProcessConfig, "launcher"))


def number(v, what):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{what} = {v!r} is not a number")


def ai_energy_benchmarks(dir_: Path):
    r = json.loads((dir_ / "benchmark_report.json").read_text())

    def summarize_gpu_wh():
        # What summarize_gpu_wh.py reads from this format: energy.gpu_energy_wh, float()-ed.
        number(r["energy"]["gpu_energy_wh"], "energy.gpu_energy_wh")
        float(r["energy"]["gpu_energy_wh"])

    def aggregator():
        # Every column results_aggregator.add_result computes from the report must be a number.
        s, e = r["summary"], r["energy"]
        for k in ("total_prompts", "successful_prompts", "failed_prompts", "total_duration_seconds",
                  "avg_latency_seconds", "avg_time_to_first_token", "total_tokens", "total_prompt_tokens",
                  "total_completion_tokens", "throughput_tokens_per_second"):
            number(s[k], f"summary.{k}")
        for k in ("gpu_energy_wh", "cpu_energy_wh", "ram_energy_wh", "total_energy_wh", "duration_seconds"):
            number(e[k], f"energy.{k}")

    def emissions():
        # co2_emissions_g comes from energy.emissions_g_co2eq: a number when the run had a grid
        # location or factor (docs/carbon.md); the caller gives one.
        for k in ("emissions_g_co2eq", "emissions_kg_co2eq", "carbon_intensity_g_per_kwh"):
            number(r["energy"][k], f"energy.{k}")

    check(f"{dir_.name}: summarize_gpu_wh.py's fields (ai_energy_benchmarks)", summarize_gpu_wh)
    check(f"{dir_.name}: results_aggregator.py's columns but co2 (ai_energy_benchmarks)", aggregator)
    check(f"{dir_.name}: results_aggregator.py's co2_emissions_g (ai_energy_benchmarks)", emissions)


def main():
    for arg in sys.argv[1:]:
        d = Path(arg)
        report = json.loads((d / "benchmark_report.json").read_text())
        if "summary" in report and "energy" in report:
            ai_energy_benchmarks(d)
        else:
            optimum(d)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
