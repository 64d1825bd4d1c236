"""Deprecated location of `accord.core.disclosure`; kept for one version for notebooks that
import the small-cell rule from here."""

import warnings

from accord.core.disclosure import *  # noqa: F403

warnings.warn(
    "accord.core.disclosure moved to accord.core.disclosure; import it from there",
    DeprecationWarning,
    stacklevel=2,
)
