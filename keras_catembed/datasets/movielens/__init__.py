"""MovieLens ratings from GroupLens, as contiguous ids ready to embed.

`load_ratings(name)` returns a `Ratings` object: one row per rating, with
users and movies renumbered `0..n-1` (ready for an embedding table), maps
back to the original ids, and each movie's title and genres. The official
GroupLens archive is downloaded once into the Keras cache (checked against
the published checksum where GroupLens publishes a fixed one) and the
parsed arrays are cached beside it, so later loads skip parsing. Pass
`data_dir` to read a copy you already have instead.

MovieLens data sets are (c) GroupLens Research, University of Minnesota.
Their licence allows research use with acknowledgement and forbids
redistribution; read the `README` inside each archive.

The package, one concept per module:

- `releases`: the releases known (`RELEASES`) and the codes of fields.
- `ratings`, `splits`, `days`, `checks`: the `Ratings` type, its splits
  and its (user, day) index map, pure NumPy.
- `sources`: a release's files in a folder or a zip archive.
- `download`, `extract`, `cache`: fetching the archive within a deadline,
  bounded extraction with a manifest, the Keras cache and its lock.
- `parsing`, `arrow`, `metadata`, `verify`: the ratings parsers (NumPy,
  and pyarrow when installed), the movie and user files, and the checks of
  what a ratings file holds.
- `loading`: `load_ratings`, `load_official_split`, `load_user_features`.
- `inputs`: the model inputs of a `Ratings` (`inputs(ratings, columns)`).
"""

from keras_catembed.datasets.movielens.download import DOWNLOAD_TIMEOUT_SECONDS
from keras_catembed.datasets.movielens.inputs import inputs
from keras_catembed.datasets.movielens.loading import _parse_release
from keras_catembed.datasets.movielens.loading import load_official_split
from keras_catembed.datasets.movielens.loading import load_ratings
from keras_catembed.datasets.movielens.loading import load_user_features
from keras_catembed.datasets.movielens.parsing import _CHUNK_BYTES
from keras_catembed.datasets.movielens.parsing import _parse_table
from keras_catembed.datasets.movielens.ratings import Ratings
from keras_catembed.datasets.movielens.releases import AGE_GROUPS
from keras_catembed.datasets.movielens.releases import GENDERS
from keras_catembed.datasets.movielens.releases import GENRES_100K
from keras_catembed.datasets.movielens.releases import OCCUPATIONS_1M
from keras_catembed.datasets.movielens.releases import OCCUPATIONS_100K
from keras_catembed.datasets.movielens.releases import OFFICIAL_FOLDS
from keras_catembed.datasets.movielens.releases import RELEASES
from keras_catembed.datasets.movielens.releases import TIME_COLUMNS
from keras_catembed.datasets.movielens.releases import USER_FEATURES

__all__ = [
    "AGE_GROUPS",
    "DOWNLOAD_TIMEOUT_SECONDS",
    "GENDERS",
    "GENRES_100K",
    "OCCUPATIONS_100K",
    "OCCUPATIONS_1M",
    "OFFICIAL_FOLDS",
    "RELEASES",
    "TIME_COLUMNS",
    "USER_FEATURES",
    "Ratings",
    "inputs",
    "load_official_split",
    "load_ratings",
    "load_user_features",
]
