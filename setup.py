"""The optional C extension `bot._native` (see bot/_native.c); everything else is in pyproject.toml.

`optional=True`: where no C compiler is found (e.g. a slim container), the install still succeeds and
the bot runs the same Python reference code, only slower.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("bot._native", sources=["bot/_native.c"], optional=True)])
