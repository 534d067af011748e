"""A summarizer plugin written in Python: CodeCarbon emissions records (JSON).

Reads what CodeCarbon writes per tracked task -- the fields of its emissions.csv as a JSON
object (e.g. optimum-benchmark's `*_codecarbon.json`), or a JSON list of such records, one per
task -- and gives the GPU energy in Wh. CodeCarbon writes energies in kWh; this converts them
(x 1000) and says so in the warnings.

Built with componentize-py against the world `summarizer-plugin` of
wit/energy-star-plugin@0.1.0; see build.sh. The module below must define a class named after
the exported interface (`Summarizer`).
"""

import json
import math

import wit_world
from wit_world.exports.summarizer import PhaseEnergy, Summary, SummarizerInfo
from componentize_py_types import Err

NAME = "codecarbon-py"
VERSION = "0.1.0"
FORMAT = "codecarbon"

# Fields every CodeCarbon emissions record has (emissions.csv header, CodeCarbon 2.x and 3.x).
SIGNATURE = ("codecarbon_version", "gpu_energy", "cpu_energy", "ram_energy", "energy_consumed")


def _records(value):
    """The records of a report, or None when it is not CodeCarbon's shape."""
    if isinstance(value, dict):
        records = [value]
    elif isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        records = value
    else:
        return None
    for r in records:
        if not all(k in r for k in SIGNATURE):
            return None
    return records


def _kwh(record, key, where):
    """A kWh field as a number, None when absent or null; raises on anything else."""
    v = record.get(key)
    if v is None or v == "":
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        # emissions.csv converted to JSON as text keeps numbers as strings.
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{where}{key} is not a number: {v!r}")
    if not math.isfinite(v):
        raise ValueError(f"{where}{key} is not finite: {v!r}")
    return float(v)


def _no_gpu(record):
    """CodeCarbon's way of saying it found no GPU: gpu_count empty/0 and no GPU model."""
    count = record.get("gpu_count")
    return (count in (None, "", 0, "0")) and not record.get("gpu_model")


def _sum(values):
    return None if any(v is None for v in values) else sum(values)


def _summarize(report):
    try:
        value = json.loads(report)
    except ValueError as e:
        raise ValueError(f"report is not valid JSON: {e}")
    records = _records(value)
    if records is None:
        raise ValueError(
            "not a CodeCarbon emissions record: expected a JSON object (or list of objects) with "
            + ", ".join(SIGNATURE)
        )
    warnings = []
    phases = []
    absent = []
    for i, r in enumerate(records):
        where = f"record {i}: " if len(records) > 1 else ""
        name = str(r.get("task_name") or (f"run{i}" if len(records) > 1 else "run"))
        gpu = _kwh(r, "gpu_energy", where)
        cpu = _kwh(r, "cpu_energy", where)
        ram = _kwh(r, "ram_energy", where)
        gpu_wh = None if gpu is None else gpu * 1000.0
        if gpu_wh is not None and gpu_wh == 0.0 and _no_gpu(r):
            # CodeCarbon writes 0 for gpu_energy when it tracked no GPU: that is "no GPU", not 0 Wh.
            gpu_wh = None
            absent.append(name)
        elif gpu_wh is None:
            if _no_gpu(r):
                absent.append(name)
            else:
                raise ValueError(f"{where}gpu_energy is missing although gpu_count/gpu_model name a GPU")
        elif gpu_wh == 0.0:
            warnings.append(
                f"{name}: GPU energy is 0 Wh with a GPU present: likely a failed reading "
                "(CodeCarbon reports 0 on GPUs without an energy counter, codecarbon#1316)"
            )
        elif gpu_wh < 0.0:
            warnings.append(f"{name}: GPU energy is negative ({gpu_wh} Wh): not a valid measurement, kept as reported")
        phases.append(PhaseEnergy(
            name=name,
            gpu_wh=gpu_wh,
            cpu_wh=None if cpu is None else cpu * 1000.0,
            ram_wh=None if ram is None else ram * 1000.0,
            counted=True,
        ))
        mode = r.get("tracking_mode")
        if mode == "machine":
            warnings.append(f"{name}: CodeCarbon tracking_mode=machine: energy of the whole machine's GPUs, not only this process's")
        pue = r.get("pue")
        if isinstance(pue, (int, float)) and not isinstance(pue, bool) and pue != 1.0:
            warnings.append(f"{name}: CodeCarbon pue={pue}; energies are reported as CodeCarbon wrote them")

    warnings.append("units: CodeCarbon writes kWh; converted to Wh (x 1000)")
    warnings.append("CodeCarbon figures: GPU from NVML; CPU and RAM possibly estimated (TDP / fixed W per GB)")

    gpu_figures = [p.gpu_wh for p in phases]
    if absent and len(absent) == len(phases):
        total = None
        reason = "CodeCarbon tracked no GPU (gpu_count empty or 0, no gpu_model)"
    elif absent:
        raise ValueError(f"records disagree: {', '.join(absent)} tracked no GPU while others did; cannot give one GPU total")
    else:
        total = sum(gpu_figures)
        reason = None
    return Summary(
        format=FORMAT,
        total_wh=total,
        gpu_absent_reason=reason,
        cpu_wh=_sum([p.cpu_wh for p in phases]),
        ram_wh=_sum([p.ram_wh for p in phases]),
        phases=phases,
        warnings=warnings,
    )


class Summarizer(wit_world.exports.Summarizer):
    def info(self) -> SummarizerInfo:
        return SummarizerInfo(
            name=NAME,
            version=VERSION,
            description="CodeCarbon emissions records (JSON, kWh -> Wh); a Python plugin built with componentize-py",
            formats=[FORMAT],
        )

    def detect(self, report: str) -> float:
        try:
            return 1.0 if _records(json.loads(report)) is not None else 0.0
        except Exception:
            return 0.0

    def summarize(self, report: str) -> Summary:
        try:
            return _summarize(report)
        except Exception as e:  # every failure becomes the WIT error string, never a trap
            raise Err(str(e))
