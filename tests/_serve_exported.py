"""Serves exported SavedModels in a fresh process and saves the outputs.

Usage: python -m tests._serve_exported JOBS.json

`JOBS.json` lists `{"path", "inputs", "out"}` entries: each SavedModel at
`path` is loaded with `tf.saved_model.load` and its `serve` endpoint is
called on the `.npz` arrays of `inputs` (keyed by column); the ratings go
to the `.npy` file `out`, and a JSON file beside it records the input
signature and the outcome of a call with an unknown id (when given).
"""

import json
import sys

import numpy as np
import tensorflow as tf


def main(jobs_path):
    with open(jobs_path) as file:
        jobs = json.load(file)
    for job in jobs:
        served = tf.saved_model.load(job["path"])
        with np.load(job["inputs"]) as data:
            inputs = {key: data[key] for key in data.files}
        np.save(job["out"], np.asarray(served.serve(inputs)))
        signature = served.signatures["serving_default"]
        specs = signature.structured_input_signature[1]
        report = {
            "signature": {
                name: [spec.dtype.name, spec.shape.as_list()]
                for name, spec in specs.items()
            }
        }
        if job.get("unknown"):
            with np.load(job["unknown"]) as data:
                unknown = {key: data[key] for key in data.files}
            try:
                report["unknown"] = np.asarray(served.serve(unknown)).tolist()
            except tf.errors.InvalidArgumentError as error:
                report["unknown"] = f"error: {error.message}"
        with open(job["out"] + ".json", "w") as file:
            json.dump(report, file)


if __name__ == "__main__":
    main(*sys.argv[1:])
