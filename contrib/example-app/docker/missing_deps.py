"""Print the requirements of pyproject.toml this interpreter does not satisfy.

    python docker/missing_deps.py [--extra NAME]... pyproject.toml

One requirement a line, ready for `pip install -r`; nothing when all are
met.  The Dockerfile installs only what this prints, which makes the same
Dockerfile work in two worlds:

- online, FROM python:3.12-slim: nothing is installed, so everything is
  printed and pip installs it into the virtualenv;
- offline, FROM the Debian base image (python3-fastapi, python3-pytest, ...
  and no pip, no PyPI): everything is met, nothing is printed, pip is
  never run.

A requirement is met when its distribution is installed and, when the
`packaging` library is at hand (pytest needs it; pip vendors it), its version
is inside the specifier.  Environment markers are honoured the same way.
"""

import argparse
import importlib.metadata as metadata
import re
import sys
import tomllib


def _requirement_class():
    try:
        from packaging.requirements import Requirement
    except ImportError:
        try:
            from pip._vendor.packaging.requirements import Requirement
        except ImportError:
            return None
    return Requirement


def is_met(spec, requirement_class):
    if requirement_class is None:
        name, specifier = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec).group(1), None
    else:
        req = requirement_class(spec)
        if req.marker is not None and not req.marker.evaluate():
            return True
        name, specifier = req.name, req.specifier
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return False
    return not specifier or specifier.contains(version, prereleases=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pyproject")
    ap.add_argument("--extra", action="append", default=[], help="also check this optional-dependencies group")
    ap.add_argument("--no-runtime", action="store_true", help="skip [project] dependencies")
    args = ap.parse_args(argv)

    with open(args.pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    specs = [] if args.no_runtime else list(project.get("dependencies", []))
    for extra in args.extra:
        try:
            specs += project["optional-dependencies"][extra]
        except KeyError:
            ap.error(f"no optional-dependencies group {extra!r} in {args.pyproject}")

    requirement_class = _requirement_class()
    missing = [s for s in specs if not is_met(s, requirement_class)]
    for spec in missing:
        print(spec)
    what = "missing: " + ", ".join(missing) if missing else "all met by the installed packages"
    print(f"{len(specs)} requirement(s), {what}", file=sys.stderr)


if __name__ == "__main__":
    main()
