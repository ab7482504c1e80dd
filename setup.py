"""The C helpers of the load balancer (src/microforum/lb/_speedups.c) and the services' WAL
syncing thread (src/microforum/services/_walsync.c), built at install time when a C compiler
and Python headers are there; without them the install goes on and their Python versions are
used (lb/speedups.py, services/walsync.py). Everything else is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "microforum.lb._speedups",
            sources=["src/microforum/lb/_speedups.c"],
            optional=True,  # a failed compile is a warning, not a failed install
        ),
        Extension(  # the WAL's syncing thread (services/walsync.py), optional as well
            "microforum.services._walsync",
            sources=["src/microforum/services/_walsync.c"],
            optional=True,
        ),
    ]
)
