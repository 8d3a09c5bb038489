"""Writing benchmark results: the machine they ran on, JSON and markdown."""

import json
import os
import platform
import subprocess
import sys


def machine_info(**extra):
    """The machine and run settings recorded beside every result.

    With the CPU's model name and its vector units that change speed
    and rounding (AVX2, AVX-512, bfloat16), as Linux lists them.
    """
    return {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        **cpu_info(),
        **extra,
    }


def cpu_info():
    """The CPU's model name and its vector units among Linux's flags.

    The flags are the library's reading of them (`_pair_dtype.cpu_flags`,
    which `pair_dtype="auto"` consults); those recorded are AVX2,
    AVX-512F and the bfloat16 units of `_pair_dtype.BFLOAT16_FLAGS`.
    """
    from keras_catembed import _pair_dtype

    model = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                    break
    except OSError:
        pass
    flags = _pair_dtype.cpu_flags()
    recorded = ("avx2", "avx512f", *sorted(_pair_dtype.BFLOAT16_FLAGS))
    return {
        "cpu_model": model,
        "cpu_vector_flags": [flag for flag in recorded if flag in flags],
    }


def pairs_per_step(text):
    """`RatingModel(pairs_per_step=...)` from an option's text.

    `"16"` is one window for every pair term; `"user_id=16,movie_id=4"`
    one per described column.
    """
    if "=" not in text:
        return int(text)
    return {
        column: int(count)
        for column, count in (part.split("=") for part in text.split(","))
    }


def steps_cell(value):
    """A table cell for `pairs_per_step`: '-', '16' or 'user_id 16, ...'."""
    if not value:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{c} {n or 'all'}" for c, n in value.items())
    return str(value)


def write(out, table, results, machine):
    """Writes `<out>.json` (raw figures) and `<out>.md` (the table)."""
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".json", "w") as file:
        json.dump({"machine": machine, "results": results}, file, indent=1)
    with open(out + ".md", "w") as file:
        file.write(table + "\n\n" + json.dumps(machine) + "\n")


def run_worker(script, backend, arguments, environment=None):
    """Runs `script --worker ARGUMENTS` on one Keras backend.

    The backend is fixed when Keras is imported, so each backend measures
    in its own process; the worker prints one `RESULTS <json>` line. The
    process gets `environment` (by default this one's) with the backend.
    """
    command = [sys.executable, script, "--worker", *map(str, arguments)]
    env = dict(
        os.environ if environment is None else environment,
        KERAS_BACKEND=backend,
    )
    output = subprocess.run(
        command, env=env, capture_output=True, text=True, check=True
    ).stdout
    line = next(ln for ln in output.splitlines() if ln.startswith("RESULTS "))
    return json.loads(line[len("RESULTS ") :])
