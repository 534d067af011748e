#!/usr/bin/env python3
"""Regenerate crates/carbon/data/*.csv, the offline grid carbon-intensity tables.

The figures are the ones CodeCarbon ships with its offline tracker (the tracker optimum-benchmark
and AI Energy Score use), taken from the released wheel on PyPI so that energy-star's emissions
match what CodeCarbon would have written for the same energy and place:

- countries.csv: `codecarbon/data/private_infra/global_energy_mix.json`, field
  `carbon_intensity` (g CO2eq/kWh of electricity generated) and `year`, per ISO 3166-1 alpha-3.
- us_states.csv: `codecarbon/data/private_infra/2016/usa_emissions.json`, field `emissions`
  (lbs CO2eq/MWh, EPA eGRID 2016 state output emission rates), per state.

Usage: python3 scripts/carbon-table.py [CODECARBON_VERSION]   (needs pip and PyPI)
"""
import csv
import json
import pathlib
import subprocess
import sys
import tempfile
import zipfile

VERSION = sys.argv[1] if len(sys.argv) > 1 else "3.0.4"
OUT = pathlib.Path(__file__).resolve().parent.parent / "crates" / "carbon" / "data"


def main():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
             "-d", tmp, f"codecarbon=={VERSION}"],
            check=True,
        )
        wheel = next(pathlib.Path(tmp).glob("codecarbon-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            mix = json.loads(z.read("codecarbon/data/private_infra/global_energy_mix.json"))
            usa = json.loads(z.read("codecarbon/data/private_infra/2016/usa_emissions.json"))
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "countries.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["iso3", "country", "g_co2eq_per_kwh", "year"])
        for iso, row in sorted(mix.items()):
            if row.get("carbon_intensity") is None:
                continue
            w.writerow([iso, row["country_name"], row["carbon_intensity"], row.get("year", "")])
    with open(OUT / "us_states.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["state", "code", "lbs_co2eq_per_mwh"])
        for state, row in sorted(usa.items()):
            # The file's own "_unit" row, and its national "usa" row (not a state: the national
            # figure comes from countries.csv).
            if state.startswith("_") or len(row.get("regionCode", "")) != 2:
                continue
            w.writerow([state, row["regionCode"], row["emissions"]])
    print(f"wrote {OUT}/countries.csv ({len(mix)} rows) and us_states.csv ({len(usa)} rows) from codecarbon {VERSION}")


if __name__ == "__main__":
    main()
