"""The installed version of bayesgmm, looked up once."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bayesgmm")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"
