"""Pinned versions of the packages the surname data are derived from.

The name lists inside these packages change between releases, so the builder
refuses to run against any other version: the committed files could not be
reproduced otherwise.
"""

from __future__ import annotations

from importlib import metadata

PINNED_VERSIONS: tuple[tuple[str, str], ...] = (
    ("Faker", "40.54.0"),
    ("anyascii", "0.3.3"),
    ("japanese-personal-name-dataset", "0.4.0"),
)
"""(distribution name, exact version) pairs, in a fixed order."""


class VersionMismatchError(RuntimeError):
    """Raised when an installed source package is missing or has the wrong version."""


def installed_version(distribution: str) -> str | None:
    """Return the installed version of ``distribution``, or ``None`` if it is absent."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def check_versions() -> None:
    """Fail with a clear message unless every pinned package has its pinned version."""
    problems = []
    for name, wanted in PINNED_VERSIONS:
        found = installed_version(name)
        if found != wanted:
            shown = "not installed" if found is None else f"version {found} is installed"
            problems.append(f"  {name}=={wanted} is required, but {shown}")
    if problems:
        raise VersionMismatchError(
            "The surname dataset is derived from pinned package versions; the name lists differ "
            "between releases, so the committed files cannot be reproduced.\n"
            + "\n".join(problems)
            + "\nInstall the pinned versions (see requirements.txt) and run the builder again."
        )
