"""The C helpers of the load balancer (src/microforum/lb/_speedups.c), built at install time
when a C compiler and Python headers are there; without them the install goes on and the
load balancer uses their Python versions (lb/speedups.py). Everything else is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "microforum.lb._speedups",
            sources=["src/microforum/lb/_speedups.c"],
            optional=True,  # a failed compile is a warning, not a failed install
        )
    ]
)
