"""Loads a .keras file in a fresh process and saves its predictions.

Usage: python -m tests._load_and_predict MODEL.keras INPUTS.npz OUT.npy ...

Takes one or more (model, inputs, output) triples; prints each model's class
name on its own line, in order.
"""

import sys

import keras
import numpy as np

import keras_catembed  # noqa: F401  (registers the classes)
import tests.custom_models  # noqa: F401  (registers the user subclass)


def main(model_path, inputs_path, out_path):
    model = keras.saving.load_model(model_path)  # safe_mode=True
    with np.load(inputs_path) as data:
        inputs = {key: data[key] for key in data.files}
    np.save(out_path, model.predict(inputs, verbose=0))
    print(type(model).__name__)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if not arguments or len(arguments) % 3:
        sys.exit(__doc__)
    for i in range(0, len(arguments), 3):
        main(*arguments[i : i + 3])
