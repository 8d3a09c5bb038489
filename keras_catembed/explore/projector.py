"""Files for TensorBoard's embedding projector."""

import os
import re
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_catembed.explore import vectors

__all__ = ["to_projector"]


def _tsv_cell(value: object) -> str:
    return str(value).replace("\t", " ").replace("\n", " ")


def to_projector(
    model: Any,
    column: str,
    log_dir: str,
    metadata: Sequence[Any] | Mapping[str, Sequence[Any]] | None = None,
) -> dict[str, str | None]:
    """Writes files that TensorBoard's embedding projector opens.

    Writes `<column>_vectors.tsv`, `<column>_metadata.tsv` (when `metadata`
    is given) and `projector_config.pbtxt` into `log_dir`. Open them with
    `tensorboard --logdir LOG_DIR` (Projector tab), or load the two TSV
    files at projector.tensorflow.org.

    Args:
        model: A trained `keras_catembed.RatingModel`.
        column: String. The column name.
        log_dir: String. Folder to write into (created if missing).
        metadata: Optional sequence of labels (one per id index), or a dict
            mapping a column header to such a sequence (several metadata
            columns, e.g. `{"title": titles, "genres": genres}`). A
            one-column file gets no header row, as the projector expects.

    Returns:
        Dict with the paths written: `"vectors"`, `"metadata"` (or None) and
        `"config"`.
    """
    matrix = vectors.embedding_matrix(model, column)
    num_ids = matrix.shape[0]
    # Every check before anything is written.
    headers: list[str] | None = None
    columns: list[Any] = []
    if metadata is not None:
        if isinstance(metadata, Mapping) and len(metadata) > 1:
            headers = list(metadata)
            columns = [
                vectors.per_id(f"metadata[{h!r}]", metadata[h], num_ids)
                for h in headers
            ]
        else:
            # The projector reads a one-column file as having no header.
            if isinstance(metadata, Mapping):
                metadata = next(iter(metadata.values()))
            columns = [vectors.per_id("metadata", metadata, num_ids)]
    os.makedirs(log_dir, exist_ok=True)
    vectors_path = os.path.join(log_dir, f"{column}_vectors.tsv")
    np.savetxt(vectors_path, matrix, delimiter="\t", fmt="%.6g")
    metadata_path = None
    lines = [
        "embeddings {",
        f'  tensor_name: "{column}"',
        f'  tensor_path: "{os.path.basename(vectors_path)}"',
    ]
    if metadata is not None:
        metadata_path = os.path.join(log_dir, f"{column}_metadata.tsv")
        with open(metadata_path, "w", encoding="utf-8") as file:
            if headers is not None:
                file.write("\t".join(_tsv_cell(h) for h in headers) + "\n")
            for row in zip(*columns, strict=True):
                file.write("\t".join(_tsv_cell(v) for v in row) + "\n")
        lines.append(f'  metadata_path: "{os.path.basename(metadata_path)}"')
    lines.append("}")
    config_path = os.path.join(log_dir, "projector_config.pbtxt")
    # The other columns written into this folder stay listed.
    entries = [*_other_entries(config_path, column), "\n".join(lines)]
    with open(config_path, "w", encoding="utf-8") as file:
        file.write("\n".join(entries) + "\n")
    return {
        "vectors": vectors_path,
        "metadata": metadata_path,
        "config": config_path,
    }


def _other_entries(config_path: str, column: str) -> list[str]:
    """The `embeddings { ... }` entries of a config but `column`'s."""
    try:
        with open(config_path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        return []
    entries = re.findall(r"^embeddings \{\n.*?^\}", text, re.M | re.S)
    own = f'  tensor_name: "{column}"\n'
    return [entry for entry in entries if own not in entry]
