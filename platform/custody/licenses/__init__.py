"""Licenses of training data: SPDX expressions, categories a policy can name, and detection of
which license a shipped LICENSE / README text is.

* `parse_expression`: parse and normalize an SPDX expression; a bad one is a finding (`error`
  set), never an exception.
* `CATEGORIES`, `category_of_id`, `category_of_expression`, `most_restrictive`: the category
  table (data/categories.toml) and how categories combine.
* `license_name_to_spdx`, `classify_license_name`: free-text license names ("MIT License",
  "CC BY-NC 4.0", "OpenAI") to SPDX ids and categories.
* `LicenseDetector`: match a text against the 59 common SPDX license texts shipped with the
  package, with a fallback for READMEs that only name their license.

Pure library: no I/O beyond the package's own data files. Not legal advice.
"""

from custody.licenses.categories import (
    CATEGORIES,
    category_of_expression,
    category_of_id,
    classify_license_name,
    least_restrictive,
    license_name_to_spdx,
    most_restrictive,
)
from custody.licenses.detect import DEFAULT_MIN_SCORE, LicenseDetector, Match, declared_licenses
from custody.licenses.spdx import ParsedExpression, canonical_id, parse_expression

__all__ = [
    "CATEGORIES",
    "DEFAULT_MIN_SCORE",
    "LicenseDetector",
    "Match",
    "ParsedExpression",
    "canonical_id",
    "category_of_expression",
    "category_of_id",
    "classify_license_name",
    "declared_licenses",
    "least_restrictive",
    "license_name_to_spdx",
    "most_restrictive",
    "parse_expression",
]
