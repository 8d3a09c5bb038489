"""Writing benchmark results: the machine they ran on, JSON and markdown."""

import json
import os
import platform


def machine_info(**extra):
    """The machine and run settings recorded beside every result."""
    return {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        **extra,
    }


def write(out, table, results, machine):
    """Writes `<out>.json` (raw figures) and `<out>.md` (the table)."""
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".json", "w") as file:
        json.dump({"machine": machine, "results": results}, file, indent=1)
    with open(out + ".md", "w") as file:
        file.write(table + "\n\n" + json.dumps(machine) + "\n")
